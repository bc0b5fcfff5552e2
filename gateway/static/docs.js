// A small offline viewer of /api/v1/openapi.json: no dependencies, no CDN. It renders each
// operation with its parameters, request body and responses, and every schema with the
// bounds the gateway enforces (min/max, lengths, patterns, required fields).
'use strict';

(async () => {
  const $ = (sel) => document.querySelector(sel);
  const el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    for (const k of kids) e.append(k);
    return e;
  };
  let doc;
  try {
    doc = await (await fetch('/api/v1/openapi.json', { cache: 'no-store' })).json();
  } catch (e) {
    $('#info').textContent = `Could not load the document: ${e}`;
    return;
  }
  const deref = (s) => {
    if (s && s.$ref) return { name: s.$ref.split('/').pop(), ...deref(doc.components.schemas[s.$ref.split('/').pop()]) };
    return s || {};
  };

  /** One line per property, nested objects indented, with their constraints. */
  function describe(schema, depth = 0, seen = new Set()) {
    const s = deref(schema);
    const pad = '  '.repeat(depth);
    if (s.name && seen.has(s.name)) return `${pad}(${s.name}, see above)\n`;
    const seen2 = new Set(seen); if (s.name) seen2.add(s.name);
    const alternatives = s.oneOf || s.anyOf;
    if (alternatives) return alternatives.map((x) => describe(x, depth, seen2).replace(/^\s*/, `${pad}either: `)).join('');
    const type = Array.isArray(s.type) ? s.type.join(' | ') : (s.type || 'any');
    const bounds = [];
    if (s.minimum !== undefined || s.maximum !== undefined) bounds.push(`${s.minimum ?? ''}..=${s.maximum ?? ''}`);
    if (s.minLength !== undefined || s.maxLength !== undefined) bounds.push(`length ${s.minLength ?? 0}..=${s.maxLength ?? '∞'}`);
    if (s.pattern) bounds.push(`pattern ${s.pattern}`);
    if (s.format) bounds.push(s.format);
    if (s.enum) bounds.push(`one of ${s.enum.map((v) => JSON.stringify(v)).join(', ')}`);
    let out = `${type}${s.name ? ` (${s.name})` : ''}${bounds.length ? ` [${bounds.join('; ')}]` : ''}${s.description ? ` — ${s.description}` : ''}\n`;
    if (s.properties) {
      const req = new Set(s.required || []);
      for (const [k, v] of Object.entries(s.properties)) {
        out += `${pad}  ${k}${req.has(k) ? '' : '?'}: ${describe(v, depth + 1, seen2).trimStart()}`;
      }
    }
    if (s.items) out += `${pad}  items: ${describe(s.items, depth + 1, seen2).trimStart()}`;
    return out;
  }

  $('#info').textContent = `${doc.info.title} ${doc.info.version} (OpenAPI ${doc.openapi}). ${doc.info.description || ''}`;
  const toc = $('#toc');
  const ops = $('#ops');
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const id = `op-${op.operationId || `${method}-${path}`}`;
      toc.append(el('a', { href: `#${id}` }, `${method.toUpperCase()} ${path}`));
      const sec = el('section', { class: 'op', id });
      sec.append(el('h2', {}, el('span', { class: `m ${method}` }, method.toUpperCase()), ' ', el('code', {}, path)));
      sec.append(el('p', {}, op.summary || ''));
      if (op.description) sec.append(el('p', { class: 'muted' }, op.description));
      sec.append(el('p', {}, (op.security && op.security.length) ? 'Auth: Authorization: Bearer <JWT>' : 'Auth: none'));
      for (const p of op.parameters || []) {
        sec.append(el('p', {}, `${p.in} parameter `, el('code', {}, p.name), p.required ? ' (required): ' : ': ', el('code', {}, describe(p.schema).trim())));
      }
      if (op.requestBody) {
        const c = op.requestBody.content['application/json'];
        sec.append(el('h3', {}, 'Request body'), el('p', { class: 'muted' }, op.requestBody.description || ''), el('pre', {}, describe(c.schema)));
      }
      const table = el('table', {}, el('tr', {}, el('th', {}, 'Status'), el('th', {}, 'Reply')));
      for (const [status, r] of Object.entries(op.responses)) {
        const content = r.content && Object.entries(r.content)[0];
        const body = content ? `${content[0]}: ${describe(content[1].schema)}` : '';
        const headers = r.headers ? ` (headers: ${Object.keys(r.headers).join(', ')})` : '';
        table.append(el('tr', {}, el('td', {}, `${status} ${r.description || ''}${headers}`), el('td', {}, el('pre', {}, body))));
      }
      sec.append(el('h3', {}, 'Responses'), table);
      ops.append(sec);
    }
  }
})();
