// k6 side of bench/simulate-sale.sh: replays a click schedule (bench/sim/sale.py schedule:
// [t_ms, user_index] pairs sorted by time, t relative to the sale's opening at START_MS, unix
// ms) against POST /api/v1/seckill. Iterations are handed out in schedule order; each waits
// for its click time, then sends. VUS bounds the clicks in flight: when the stack is slower
// than the burst, clicks queue up behind them (users waiting), none is dropped.
//
// Environment: BASE_URL, ACTIVITY_ID, PRODUCT_ID, TOKENS, SCHEDULE, START_MS, VUS [300],
// MAX_DURATION [10m], SUMMARY.
import http from 'k6/http';
import exec from 'k6/execution';
import { sleep } from 'k6';
import { SharedArray } from 'k6/data';
import { Trend } from 'k6/metrics';
import { CODES, admission, count } from './seckill.js';

const BASE = __ENV.BASE_URL;
const ACTIVITY = __ENV.ACTIVITY_ID;
const PRODUCT = __ENV.PRODUCT_ID || '1';
const START_MS = parseInt(__ENV.START_MS, 10);

const tokens = new SharedArray('tokens', () =>
  open(__ENV.TOKENS).split('\n').filter((l) => l.length > 0),
);
const schedule = new SharedArray('schedule', () => JSON.parse(open(__ENV.SCHEDULE)));
// How late each click went out compared with its schedule (no free VU: the user waited).
const late = new Trend('click_late_ms');

export const options = {
  scenarios: {
    sale: {
      executor: 'shared-iterations',
      vus: parseInt(__ENV.VUS || '300', 10),
      iterations: schedule.length,
      maxDuration: __ENV.MAX_DURATION || '10m',
    },
  },
  summaryTrendStats: ['avg', 'min', 'p(50)', 'p(90)', 'p(95)', 'p(99)', 'max'],
  thresholds: Object.fromEntries(CODES.map((c) => [`seckill_replies{code:${c}}`, ['count>=0']])),
};

export default function () {
  const [t, user] = schedule[exec.scenario.iterationInTest];
  const wait = START_MS + t - Date.now();
  if (wait > 0) sleep(wait / 1000);
  else late.add(-wait);
  const res = http.post(
    `${BASE}/api/v1/seckill`,
    JSON.stringify({
      activity_id: ACTIVITY, product_id: PRODUCT, quantity: 1,
      admission: admission(BASE, ACTIVITY, tokens[user]),
    }),
    {
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${tokens[user]}` },
      tags: { name: 'POST /api/v1/seckill' },
      timeout: '30s',
    },
  );
  count(res);
}

export function handleSummary(data) {
  const out = { stdout: '' };
  if (__ENV.SUMMARY) out[__ENV.SUMMARY] = JSON.stringify(data, null, 1);
  return out;
}
