import test from 'ava';
import { leastSquaresSlope, theilSenSlope } from '../support/slope.js';

// The soak judges the second half of 600 s: 60 samples 5 s apart, x in minutes.
const xs = Array.from({ length: 60 }, (_, i) => 5 + i / 12);

test('a steady growth is seen by both slopes', (t) => {
  const ys = xs.map((x) => 100 + 4 * x + (Math.sin(x * 7) > 0 ? 0.5 : -0.5));
  t.true(Math.abs(theilSenSlope(xs, ys) - 4) < 0.3);
  t.true(Math.abs(leastSquaresSlope(xs, ys) - 4) < 0.3);
});

test('one late stall tilts least squares but not Theil–Sen', (t) => {
  const ys = xs.map(() => 20);
  ys[57] = 200; // one 180 ms stall near the end (p99 of one scrape interval)
  t.true(leastSquaresSlope(xs, ys) > 2, 'least squares reads a trend');
  t.is(theilSenSlope(xs, ys), 0, 'flat');
});

test('degenerate series give 0', (t) => {
  t.is(theilSenSlope([1], [5]), 0);
  t.is(theilSenSlope([1, 1], [5, 9]), 0);
});
