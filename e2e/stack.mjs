// A private seckill stack for browser tests, started from the binaries in target/:
// redis-server with the module, a throwaway MariaDB, `seckill db migrate`, seckill-gateway
// (dev mode: admin/admin) and seckill-worker, each on a free loopback port, in one temp dir.
//
// Everything started here is stopped by `stack.stop()`, by process exit and by signals; a
// detached shell watchdog also kills the servers and removes the directory if this Node
// process dies without running any of that (SIGKILL, a crash of the runner).
//
// Environment:
//   SECKILL_E2E_BIN_DIR   directory of the binaries and the module (default: the two below)
//   SECKILL_E2E_PROFILE   cargo profile whose binaries to use (default: debug)
//   CARGO_TARGET_DIR      target directory (default: <repo>/target)
//   SECKILL_E2E_KEEP=1    keep the temp dir (logs, data) after the run

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync, appendFileSync, openSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The artifacts the stack needs, or an error naming the command that builds them. */
export function artifacts() {
  const target = process.env.CARGO_TARGET_DIR
    ? path.resolve(REPO, process.env.CARGO_TARGET_DIR)
    : path.join(REPO, 'target');
  const dir = process.env.SECKILL_E2E_BIN_DIR
    || path.join(target, process.env.SECKILL_E2E_PROFILE || 'debug');
  const a = {
    gateway: path.join(dir, 'seckill-gateway'),
    worker: path.join(dir, 'seckill-worker'),
    cli: path.join(dir, 'seckill'),
    module: path.join(dir, 'libseckill_module.so'),
  };
  const missing = Object.values(a).filter((p) => !existsSync(p));
  if (missing.length) {
    throw new Error(`missing ${missing.join(', ')}: run \`cargo build --workspace\` first`);
  }
  return a;
}

/**
 * A free TCP port on 127.0.0.1 (the OS picks it). Another process may take it before our
 * server binds it: start servers with `Stack.startOnFreePort`, which retries.
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Whether process `pid` itself listens on TCP `port` (Linux /proc): a server that another
 * process (another test's) runs on the same port does not count.
 */
export function listensOn(pid, port) {
  const want = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const inodes = new Set();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text;
    try { text = readFileSync(table, 'utf8'); } catch (_) { continue; }
    for (const line of text.split('\n').slice(1)) {
      const c = line.trim().split(/\s+/); // local_address, st (0A = LISTEN), inode
      if (c.length > 9 && c[3] === '0A' && c[1].endsWith(want)) inodes.add(`socket:[${c[9]}]`);
    }
  }
  if (!inodes.size) return false;
  let fds;
  try { fds = readdirSync(`/proc/${pid}/fd`); } catch (_) { return false; }
  return fds.some((fd) => {
    try { return inodes.has(readlinkSync(`/proc/${pid}/fd/${fd}`)); } catch (_) { return false; }
  });
}

/** The environment for children: ours without SECKILL_* (they would override the config). */
function childEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SECKILL_')) env[k] = v;
  return { ...env, RUST_LOG: 'info', ...extra };
}

export class Stack {
  /** `options.config`: YAML appended to the stack's config file (e.g. an `admission:` section). */
  constructor(options = {}) {
    this.extraConfig = options.config || '';
    this.dir = mkdtempSync(path.join(tmpdir(), 'seckill-e2e-'));
    this.children = []; // {name, proc, log}
    this.pidFile = path.join(this.dir, 'pids');
    writeFileSync(this.pidFile, '');
    this.stopped = false;
    this.startWatchdog();
    this.onExit = () => this.killAllSync();
    process.on('exit', this.onExit);
  }

  /** Kills the recorded servers and removes the dir once this process is gone. */
  startWatchdog() {
    const keep = process.env.SECKILL_E2E_KEEP === '1';
    const script = `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; ` +
      `for p in $(cat "$1/pids" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done; ` +
      (keep ? '' : 'sleep 1; rm -rf "$1"');
    const w = spawn('sh', ['-c', script, 'watchdog', this.dir], { stdio: 'ignore', detached: true });
    w.unref();
    this.watchdog = w;
  }

  log(name) { return path.join(this.dir, `${name}.log`); }

  /** Starts a long-running child with its output in <dir>/<name>.log. */
  spawn(name, cmd, args, opts = {}) {
    const log = this.log(name);
    const fd = openSync(log, 'a');
    const proc = spawn(cmd, args, {
      cwd: opts.cwd || this.dir, env: childEnv(opts.env), stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    const child = { name, proc, log, exited: false, code: null };
    proc.on('exit', (code, signal) => { child.exited = true; child.code = code ?? signal; });
    proc.on('error', (e) => { child.exited = true; child.code = String(e); });
    this.children.push(child);
    if (proc.pid) appendFileSync(this.pidFile, `${proc.pid}\n`);
    return child;
  }

  /** Runs a command to completion; throws with its output when it fails. */
  run(name, cmd, args, opts = {}) {
    const r = spawnSync(cmd, args, {
      cwd: opts.cwd || this.dir, env: childEnv(opts.env), encoding: 'utf8', timeout: opts.timeout || 120000,
    });
    appendFileSync(this.log(name), `$ ${cmd} ${args.join(' ')}\n${r.stdout || ''}${r.stderr || ''}\n`);
    if (r.status !== 0) {
      throw new Error(`${name}: ${cmd} ${args.join(' ')} failed (${r.error || `exit ${r.status}`}):\n${r.stdout}${r.stderr}`);
    }
    return r.stdout;
  }

  async waitFor(what, child, check, timeoutMs = 60000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (child && child.exited) {
        throw new Error(`${what} exited (${child.code}) during startup; log:\n${this.tail(child.name)}`);
      }
      if (await check()) return;
      await sleep(100);
    }
    throw new Error(`${what} not ready after ${timeoutMs} ms${child ? `; log:\n${this.tail(child.name)}` : ''}`);
  }

  /**
   * Starts `start(port)` (which spawns and returns the child) on a free port and waits until
   * the child itself listens there. A child that exits first most likely found the port
   * taken in between: it is started again on another port (three retries).
   */
  async startOnFreePort(what, start, timeoutMs = 60000) {
    let last;
    for (let attempt = 0; attempt < 4; attempt++) {
      const port = await freePort();
      const child = start(port);
      try {
        await this.waitFor(what, child, async () => listensOn(child.proc.pid, port), timeoutMs);
        return { port, child };
      } catch (e) {
        if (!child.exited) throw e; // still running but not listening: not a port race
        last = e;
        console.error(`${what} on port ${port} exited before listening; retrying on another port`);
      }
    }
    throw last;
  }

  tail(name, lines = 40) {
    try {
      return readFileSync(this.log(name), 'utf8').split('\n').slice(-lines).join('\n');
    } catch (_) { return '(no log)'; }
  }

  /** The last lines of every log, for failure reports. */
  logs() {
    return this.children.map((c) => `----- ${c.name} (${c.log}) -----\n${this.tail(c.name)}`).join('\n');
  }

  async startMariaDb() {
    const data = path.join(this.dir, 'mysql');
    let last = '';
    for (let i = 0; i < 3; i++) { // the bootstrap occasionally fails under load; the Rust harness retries too
      rmSync(data, { recursive: true, force: true });
      const r = spawnSync('mariadb-install-db', ['--no-defaults', `--datadir=${data}`,
        '--auth-root-authentication-method=normal', '--skip-test-db', '--user=root'],
      { encoding: 'utf8', timeout: 120000 });
      if (r.status === 0) { last = ''; break; }
      last = `${r.error || ''}${r.stdout}${r.stderr}`;
      await sleep(200);
    }
    if (last) throw new Error(`mariadb-install-db failed (install mariadb-server):\n${last}`);
    const { port, child: mariadb } = await this.startOnFreePort('MariaDB', (p) => this.spawn('mariadb', 'mariadbd', [
      '--no-defaults', '--user=root', `--datadir=${data}`,
      `--port=${p}`, '--bind-address=127.0.0.1', `--socket=${path.join(this.dir, 'mysqld.sock')}`,
      `--pid-file=${path.join(this.dir, 'mysqld.pid')}`, '--skip-log-bin', '--skip-name-resolve',
      '--innodb-buffer-pool-size=64M', '--innodb-flush-log-at-trx-commit=2',
      '--character-set-server=utf8mb4', '--collation-server=utf8mb4_general_ci']));
    const sql = (q) => spawnSync('mariadb', ['--no-defaults', '-h', '127.0.0.1', `--port=${port}`,
      '-u', 'root', '-N', '-B', '-e', q], { encoding: 'utf8', timeout: 10000 });
    // Listening is not enough (InnoDB may still be recovering): wait for a query.
    await this.waitFor('MariaDB', mariadb, async () => sql('SELECT 1').status === 0);
    const r = sql('CREATE DATABASE seckill');
    if (r.status !== 0) throw new Error(`CREATE DATABASE failed: ${r.stderr}`);
    this.mysqlUrl = `mysql://root@127.0.0.1:${port}/seckill`;
  }

  async startRedis(module) {
    const { port } = await this.startOnFreePort('redis-server', (p) => this.spawn('redis', 'redis-server', [
      '--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--daemonize', 'no', '--dir', this.dir, '--loadmodule', module]));
    this.redisUrl = `redis://127.0.0.1:${port}/`;
  }

  /** Starts every server; resolves once the gateway answers /health. */
  async start() {
    const a = artifacts();
    await Promise.all([this.startMariaDb(), this.startRedis(a.module)]);
    const config = path.join(this.dir, 'config.yaml');
    writeFileSync(config, [
      `redis:\n  url: ${this.redisUrl}`,
      `mysql:\n  url: ${this.mysqlUrl}\n  max_connections: 4`,
      'etcd:\n  endpoints: []',
      'gateway:\n  dev_mode: true',
      // Orders should appear within a second or so of the click.
      'worker:\n  consumers: 1\n  block_ms: 200\n  discover_interval_ms: 200',
      this.extraConfig,
      '',
    ].join('\n'));
    this.run('migrate', a.cli, ['--config', config, 'db', 'migrate']);
    const { port: gatewayPort, child: gw } = await this.startOnFreePort('seckill-gateway',
      (p) => this.spawn('gateway', a.gateway, ['--config', config, '--dev', '--listen', `127.0.0.1:${p}`]));
    this.baseUrl = `http://127.0.0.1:${gatewayPort}`;
    await this.waitFor('seckill-gateway', gw, async () => {
      try { return (await fetch(`${this.baseUrl}/health`)).ok; } catch (_) { return false; }
    });
    // The worker's metrics address from the environment, which overrides the config file.
    await this.startOnFreePort('seckill-worker', (p) => this.spawn('worker', a.worker, ['--config', config],
      { env: { SECKILL_WORKER__METRICS_ADDR: `127.0.0.1:${p}` } }));
    return this;
  }

  /** SIGTERM to every child (newest first), SIGKILL after a grace period; removes the dir. */
  async stop() {
    if (this.stopped) return;
    this.stopped = true;
    for (const c of [...this.children].reverse()) if (!c.exited) c.proc.kill('SIGTERM');
    const deadline = Date.now() + 5000;
    while (this.children.some((c) => !c.exited) && Date.now() < deadline) await sleep(50);
    this.killAllSync();
    process.off('exit', this.onExit);
    try { process.kill(this.watchdog.pid, 'SIGKILL'); } catch (_) { /* gone */ }
    if (process.env.SECKILL_E2E_KEEP === '1') console.error(`kept ${this.dir}`);
    else rmSync(this.dir, { recursive: true, force: true });
  }

  killAllSync() {
    for (const c of this.children) {
      if (!c.exited) { try { c.proc.kill('SIGKILL'); } catch (_) { /* gone */ } }
    }
  }
}

/** JSON API client for the test's own (non-browser) calls. */
export function apiClient(baseUrl) {
  return async function call(method, p, { token, body } = {}) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(baseUrl + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const env = await res.json().catch(() => null);
    return { status: res.status, body: env, data: env && env.data };
  };
}
