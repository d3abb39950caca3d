// Compares a newman JSON report with hack/conformance-exceptions.txt: exits
// non-zero on any failed assertion that is not a documented exception.
// Usage: node hack/conformance-check.js REPORT.json EXCEPTIONS.txt
'use strict';
const fs = require('fs');
const [report, exceptionsFile] = process.argv.slice(2);
const run = JSON.parse(fs.readFileSync(report, 'utf8')).run;
const expected = new Map();
for (const line of fs.readFileSync(exceptionsFile, 'utf8').split('\n')) {
  if (!line.trim() || line.startsWith('#')) continue;
  const [item, assertion, why] = line.split('|').map((s) => s.trim());
  expected.set(item + ' | ' + assertion, why);
}
let assertions = 0;
const failed = new Map();
for (const ex of run.executions) {
  for (const a of ex.assertions || []) {
    assertions++;
    if (a.error) failed.set(ex.item.name + ' | ' + a.assertion, a.error.message);
  }
}
const unexpected = [...failed.keys()].filter((k) => !expected.has(k));
const nowPassing = [...expected.keys()].filter((k) => !failed.has(k));
const passed = assertions - failed.size;
console.log(`conformance: ${assertions} assertions, ${passed} passed, ${failed.size} failed (${failed.size - unexpected.length} documented exceptions)`);
for (const k of nowPassing) console.log(`  note: documented exception now passes, remove it from the list: ${k}`);
for (const k of unexpected) console.log(`  UNEXPECTED failure: ${k}: ${failed.get(k)}`);
if (unexpected.length > 0) {
  console.log('conformance: FAILED. Fix the server, or document the exception with its RFC section in hack/conformance-exceptions.txt');
  process.exit(1);
}
console.log('conformance: OK');
