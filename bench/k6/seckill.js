// k6 load test of the reserving path: POST /api/v1/seckill at a rate ramping up to RATE
// requests/s, each request by a user of the tokens file (bench/load-test.sh seeds them with
// `seckill users seed`). Iteration i uses token i mod N, so the first N requests are N distinct
// users and later ones are repeat clicks (LIMIT_EXCEEDED or SOLD_OUT).
//
// Environment: BASE_URL, ACTIVITY_ID, PRODUCT_ID, TOKENS (file), RATE [2000], RAMP [10s],
// HOLD [20s], VUS [200] (pre-allocated), MAX_VUS [1000], SUMMARY (JSON file written at the end),
// ADMISSION [unset; 1 when the gateway runs with admission.required at difficulty 0: each click
// first gets its admission token and waits for its turn].
import http from 'k6/http';
import exec from 'k6/execution';
import { SharedArray } from 'k6/data';
import { Counter } from 'k6/metrics';
import { sleep } from 'k6';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const ACTIVITY = __ENV.ACTIVITY_ID;
const PRODUCT = __ENV.PRODUCT_ID || '1';
const RATE = parseInt(__ENV.RATE || '2000', 10);

const tokens = new SharedArray('tokens', () =>
  open(__ENV.TOKENS).split('\n').filter((l) => l.length > 0),
);

// Every reply counted by "<status>_<MACHINE_CODE>"; the known ones are declared as thresholds
// so the end-of-test summary carries one count each; anything else is "other" (and logged).
export const CODES = [
  '200', '409_SOLD_OUT', '409_LIMIT_EXCEEDED', '429_RATE_LIMITED', '401_UNAUTHORIZED',
  '403_NOT_STARTED', '404_NO_ACTIVITY', '410_ENDED', '400_INVALID_ARGUMENT', '503_TIMEOUT',
  '503_SERVICE_UNAVAILABLE', '500_INTERNAL', '0_NETWORK', '403_ADMISSION_REQUIRED',
  '425_TOO_EARLY', 'other',
];
const replies = new Counter('seckill_replies');

export const options = {
  scenarios: {
    sale: {
      executor: 'ramping-arrival-rate',
      startRate: Math.max(1, Math.floor(RATE / 20)),
      timeUnit: '1s',
      preAllocatedVUs: parseInt(__ENV.VUS || '200', 10),
      maxVUs: parseInt(__ENV.MAX_VUS || '1000', 10),
      stages: [
        { target: RATE, duration: __ENV.RAMP || '10s' },
        { target: RATE, duration: __ENV.HOLD || '20s' },
      ],
      gracefulStop: '10s',
    },
  },
  summaryTrendStats: ['avg', 'min', 'p(50)', 'p(90)', 'p(95)', 'p(99)', 'max'],
  thresholds: Object.fromEntries(CODES.map((c) => [`seckill_replies{code:${c}}`, ['count>=0']])),
  // Replies are small; bodies are read for the machine code of refusals.
  discardResponseBodies: false,
};

let unknownLogged = 0;

export function codeOf(res) {
  if (res.status === 0) return '0_NETWORK';
  if (res.status === 200) return '200';
  let err = '';
  try {
    err = res.json('error') || '';
  } catch (_) {
    err = '';
  }
  return `${res.status}_${err}`;
}

export function count(res) {
  let code = codeOf(res);
  if (!CODES.includes(code)) {
    if (unknownLogged++ < 5) console.warn(`unexpected reply ${res.status}: ${String(res.body).slice(0, 200)}`);
    code = 'other';
  }
  replies.add(1, { code });
}

/** With ADMISSION=1: an admission token for `activity` (after waiting for its turn), else
 *  undefined (a refused admission shows as the reservation's ADMISSION_REQUIRED). */
export function admission(base, activity, token) {
  if (__ENV.ADMISSION !== '1') return undefined;
  const r = http.post(`${base}/api/v1/seckill/admission`, JSON.stringify({ activity_id: activity }), {
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    tags: { name: 'POST /api/v1/seckill/admission' },
    timeout: '10s',
  });
  if (r.status !== 200) return undefined;
  const wait = r.json('data.wait_ms') || 0;
  if (wait > 0) sleep(wait / 1000);
  return r.json('data.token');
}

export default function () {
  const i = exec.scenario.iterationInTest;
  const token = tokens[i % tokens.length];
  const res = http.post(
    `${BASE}/api/v1/seckill`,
    JSON.stringify({
      activity_id: ACTIVITY, product_id: PRODUCT, quantity: 1,
      admission: admission(BASE, ACTIVITY, token),
    }),
    {
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      tags: { name: 'POST /api/v1/seckill' },
      timeout: '10s',
    },
  );
  count(res);
}

export function handleSummary(data) {
  const out = {};
  if (__ENV.SUMMARY) out[__ENV.SUMMARY] = JSON.stringify(data, null, 1);
  out.stdout = '';
  return out;
}
