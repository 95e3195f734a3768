// Runs the HTTP cache test suite (the http-cache-tests package) against a
// cache and writes two JSON files:
//
//   --results FILE  the suite's own results format, byte for byte what its
//                   CLI prints: {"test-id": true | ["ErrorName", "message"]}
//   --tests FILE    one record per test that was run: id, suite, name, kind
//                   (required, optimal or check), depends_on, and the outcome
//                   the suite's own display code gives it (pass, fail,
//                   optional_fail, yes, no, setup_fail, harness_fail,
//                   dependency_fail, retry, untested)
//
// It does what the suite's cli.mjs does (same test list, including the
// Surrogate-Control tests; same runner; no browser-only tests), adds the
// suite's CDN-Cache-Control tests (cdn-cache-control.mjs, from its
// repository: the 0.4.5 package lacks them), plus:
//
//   --base URL        the cache under test (required)
//   --run REGEXP      run only the tests whose id matches, and the tests
//                     they depend on
//   --dump            print each request and response of the selected tests
//   --timeout-ms N    per-request timeout, so one stuck exchange fails its
//                     test instead of hanging the run (default 15000)
import fs from 'node:fs'
import { parseArgs } from 'node:util'

import fetch from 'node-fetch'
import { runTests, getResults } from 'http-cache-tests/client/runner.mjs'
import { determineTestResult } from 'http-cache-tests/lib/display.mjs'
import tests from 'http-cache-tests/tests/index.mjs'
import surrogate from 'http-cache-tests/tests/surrogate-control.mjs'
import cdn from './cdn-cache-control.mjs'

tests.push(surrogate) // as cli.mjs does
tests.push(cdn) // the suite's CDN-Cache-Control tests, which 0.4.5 does not ship

const { values: opts } = parseArgs({
  options: {
    base: { type: 'string' },
    results: { type: 'string' },
    tests: { type: 'string' },
    run: { type: 'string', default: '' },
    dump: { type: 'boolean', default: false },
    'timeout-ms': { type: 'string', default: '15000' }
  }
})
if (!opts.base || !opts.results || !opts.tests) {
  console.error('usage: node run-suite.mjs --base URL --results FILE --tests FILE [--run REGEXP] [--dump] [--timeout-ms N]')
  process.exit(2)
}
const timeout = parseInt(opts['timeout-ms'], 10)
if (!(timeout > 0)) {
  console.error(`--timeout-ms ${opts['timeout-ms']}: want a positive number of milliseconds`)
  process.exit(2)
}

// The suite's display code maps a result to one of these symbols; name them.
const outcomeBySymbol = {
  '-': 'untested',
  '✅': 'pass',
  '⛔️': 'fail',
  '⚠️': 'optional_fail',
  Y: 'yes',
  N: 'no',
  '🔹': 'setup_fail',
  '⁉️': 'harness_fail',
  '⚪️': 'dependency_fail',
  '↻': 'retry'
}

const byId = new Map()
for (const suite of tests) {
  for (const test of suite.tests) byId.set(test.id, test)
}

// Select the tests to run: all of them, or those matching --run plus
// everything they depend on (a test whose dependency did not run would
// otherwise count as a dependency failure).
const selected = new Set()
if (opts.run === '') {
  for (const id of byId.keys()) selected.add(id)
} else {
  const re = new RegExp(opts.run)
  const add = id => {
    if (selected.has(id)) return
    const test = byId.get(id)
    if (test === undefined) throw new Error(`unknown dependency ${id}`)
    selected.add(id)
    for (const dep of test.depends_on || []) add(dep)
  }
  for (const id of byId.keys()) {
    if (re.test(id)) add(id)
  }
  if (selected.size === 0) {
    console.error(`--run ${opts.run}: no test id matches`)
    process.exit(2)
  }
}

const toRun = []
for (const suite of tests) {
  const suiteTests = suite.tests.filter(test => selected.has(test.id))
  if (opts.dump && opts.run !== '') {
    for (const test of suiteTests) test.dump = true
  }
  if (suiteTests.length > 0) toRun.push({ ...suite, tests: suiteTests })
}

const timedFetch = (url, init) => fetch(url, { ...init, timeout })

await runTests(toRun, timedFetch, false, opts.base)
const results = getResults()

const records = []
for (const suite of toRun) {
  for (const test of suite.tests) {
    if (test.browser_only === true) continue // runTests skips them too
    const symbol = determineTestResult(tests, test.id, results)[2]
    records.push({
      id: test.id,
      suite: suite.id,
      name: test.name,
      kind: test.kind || 'required',
      depends_on: test.depends_on || [],
      outcome: outcomeBySymbol[symbol] || `unknown(${symbol})`
    })
  }
}

fs.writeFileSync(opts.results, JSON.stringify(results, null, 2) + '\n')
fs.writeFileSync(opts.tests, JSON.stringify(records, null, 2) + '\n')
