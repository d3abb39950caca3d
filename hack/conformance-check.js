// Compares a newman JSON report with hack/conformance-exceptions.txt and
// the collection it ran, strictly:
//   - a failed assertion passes only when an exception names its request,
//     its assertion AND its error message (exact text, or /regex/), so an
//     exception can never hide a different failure of the same check (the
//     collection has two requests named "Get group by id" with opposite
//     checks);
//   - an error in a test or pre-request script, or a request that got no
//     answer, fails the run;
//   - a run with fewer assertions than the collection's folders hold fails
//     (a script that stopped early does not count as passing);
//   - an exception that no longer fails fails the run until it is removed.
// Usage: node hack/conformance-check.js REPORT.json EXCEPTIONS.txt COLLECTION.json [FOLDER...]
'use strict';
const fs = require('fs');
const [report, exceptionsFile, collectionFile, ...folders] = process.argv.slice(2);
if (!report || !exceptionsFile || !collectionFile) {
  console.error('usage: node hack/conformance-check.js REPORT.json EXCEPTIONS.txt COLLECTION.json [FOLDER...]');
  process.exit(2);
}
const run = JSON.parse(fs.readFileSync(report, 'utf8')).run;

// Exceptions: request | assertion | message (exact, or /regex/) | why
const exceptions = [];
for (const [n, line] of fs.readFileSync(exceptionsFile, 'utf8').split('\n').entries()) {
  if (!line.trim() || line.startsWith('#')) continue;
  const parts = line.split(' | ').map((s) => s.trim());
  if (parts.length < 4 || parts.slice(0, 4).some((p) => p === '')) {
    console.log(`conformance: ${exceptionsFile}:${n + 1}: want "request | assertion | message | why"`);
    process.exit(1);
  }
  const [item, assertion, message] = parts;
  const re = message.length > 1 && message.startsWith('/') && message.endsWith('/') ? new RegExp(message.slice(1, -1)) : null;
  exceptions.push({ item, assertion, message, matches: (m) => (re ? re.test(m) : m === message), used: 0, line: n + 1 });
}

// Assertions the collection's folders hold: every pm.test( in their test scripts.
function countTests(items, selected) {
  let n = 0;
  for (const it of items) {
    const inSel = selected || folders.length === 0 || folders.includes(it.name);
    if (it.item) {
      n += countTests(it.item, inSel);
      continue;
    }
    if (!inSel) continue;
    for (const ev of it.event || []) {
      if (ev.listen !== 'test') continue;
      const src = [].concat(ev.script.exec || []).join('\n');
      n += (src.match(/\bpm\.test\s*\(/g) || []).length;
    }
  }
  return n;
}
const expectedAssertions = countTests(JSON.parse(fs.readFileSync(collectionFile, 'utf8')).item, false);

let assertions = 0;
const failures = []; // {key, text}
const problems = []; // script errors, request errors
for (const ex of run.executions) {
  const name = ex.item.name;
  if (ex.requestError) problems.push(`${name}: request failed: ${ex.requestError.message}`);
  for (const a of ex.assertions || []) {
    assertions++;
    if (!a.error) continue;
    const msg = a.error.message || '';
    const exc = exceptions.find((e) => e.item === name && e.assertion === a.assertion && e.matches(msg));
    if (exc) {
      exc.used++;
    } else {
      failures.push(`${name} | ${a.assertion} | ${msg.length > 300 ? msg.slice(0, 300) + '...' : msg}`);
    }
  }
}
for (const f of run.failures || []) {
  const name = (f.error && f.error.name) || '';
  if (name !== 'AssertionError') {
    problems.push(`${(f.source && f.source.name) || '?'}: ${f.at || 'script'}: ${name}: ${(f.error && f.error.message) || ''}`);
  }
}
const unused = exceptions.filter((e) => e.used === 0);
const excepted = exceptions.reduce((n, e) => n + e.used, 0);
const failed = failures.length + excepted;
console.log(`conformance: ${assertions} assertions (collection holds ${expectedAssertions}), ${assertions - failed} passed, ${failed} failed (${excepted} documented exceptions)`);
let ok = true;
for (const p of problems) {
  console.log(`  SCRIPT OR REQUEST ERROR: ${p}`);
  ok = false;
}
if (assertions < expectedAssertions) {
  console.log(`  TOO FEW ASSERTIONS: ran ${assertions}, the collection's folders hold ${expectedAssertions}`);
  ok = false;
}
for (const f of failures) {
  console.log(`  UNEXPECTED failure: ${f}`);
  ok = false;
}
for (const e of unused) {
  console.log(`  EXCEPTION NO LONGER FAILS (remove line ${e.line} of ${exceptionsFile}): ${e.item} | ${e.assertion}`);
  ok = false;
}
if (!ok) {
  console.log('conformance: FAILED. Fix the server, or document the exception (request | assertion | message | why) with its RFC section.');
  process.exit(1);
}
console.log('conformance: OK');
