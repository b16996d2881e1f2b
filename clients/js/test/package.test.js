// The package as users install it: what `npm pack` puts in the tarball, its `exports` resolved
// by Node and by tsc from an installed copy of that tarball, and the examples consuming it.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const EXAMPLES_DIR = resolve(PACKAGE_DIR, '..', '..', 'examples');
const EXAMPLES = ['nuxt', 'next', 'sveltekit'];
const manifest = JSON.parse(readFileSync(join(PACKAGE_DIR, 'package.json'), 'utf8'));
const npm = (args, cwd) => execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** `npm pack` into a fresh directory; `t.after` removes it. Returns { dir, tarball, files }. */
function pack(t) {
  const dir = mkdtempSync(join(tmpdir(), 'realtime-auth-pack-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const [packed] = JSON.parse(npm(['pack', '--json', '--pack-destination', dir], PACKAGE_DIR));
  return { dir, tarball: join(dir, packed.filename), files: packed.files.map((f) => f.path).sort() };
}

/** The tarball unpacked as node_modules/<name> of a consumer project in `dir`, with appwrite beside it. */
function installInto(dir, tarball) {
  const target = join(dir, 'node_modules', ...manifest.name.split('/'));
  mkdirSync(target, { recursive: true });
  execFileSync('tar', ['-xzf', tarball, '-C', target, '--strip-components=1']);
  symlinkSync(join(PACKAGE_DIR, 'node_modules', 'appwrite'), join(dir, 'node_modules', 'appwrite'));
  return target;
}

test('the manifest is publishable: not private, a version, exports with types, the SDK as a peer', () => {
  assert.equal(manifest.private, undefined);
  assert.match(manifest.version, /^\d+\.\d+\.\d+$/);
  assert.equal(manifest.type, 'module');
  assert.deepEqual(manifest.exports['.'], { types: './realtime-auth.d.ts', default: './realtime-auth.js' });
  assert.deepEqual(manifest.exports['./shared'], { types: './shared-realtime.d.ts', default: './shared-realtime.js' });
  assert.deepEqual(manifest.exports['./hub'], { types: './realtime-hub.d.ts', default: './realtime-hub.js' });
  assert.ok(manifest.peerDependencies.appwrite, 'appwrite is a peer, not bundled');
  assert.equal(manifest.dependencies, undefined, 'no runtime dependencies');
});

test('npm pack ships the module, its types, the README, the licence and package.json, nothing else', (t) => {
  const { files } = pack(t);
  assert.deepEqual(files, [
    'LICENSE', 'README.md', 'package.json', 'realtime-auth.d.ts', 'realtime-auth.js',
    'realtime-hub.d.ts', 'realtime-hub.js', 'shared-realtime.d.ts', 'shared-realtime.js',
  ]);
});

test('installed from the tarball: Node resolves the export, tsc checks a consumer against the packed types', (t) => {
  const { dir, tarball } = pack(t);
  installInto(dir, tarball);
  // Node's resolution of the package name through `exports`, from the consumer's directory.
  const exportsOf = (specifier) => {
    const script = `import('${specifier}').then((m) => console.log(Object.keys(m).sort().join(',')))`;
    return execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: dir, encoding: 'utf8' }).trim().split(',');
  };
  assert.deepEqual(exportsOf(manifest.name), ['DEFAULT_TOKEN_URL', 'RELAY_SIGN_OUT_REASONS', 'RealtimeAuthError', 'closedBySignOut', 'realtimeAuth']);
  assert.deepEqual(exportsOf(`${manifest.name}/shared`), ['sharedRealtime']);
  assert.deepEqual(exportsOf(`${manifest.name}/hub`), ['TAB_LOCK_PREFIX', 'createRealtimeHub', 'serveSharedRealtime']);

  // The README's usage against the packed .d.ts, as a bundler-resolving app (the examples) sees it.
  const usage = readFileSync(join(PACKAGE_DIR, 'test', 'types-example.ts'), 'utf8')
    .replace("'../realtime-auth.js'", `'${manifest.name}'`)
    .replace("'../shared-realtime.js'", `'${manifest.name}/shared'`)
    .replace("'../realtime-hub.js'", `'${manifest.name}/hub'`);
  assert.ok(usage.includes(`from '${manifest.name}'`));
  writeFileSync(join(dir, 'usage.ts'), usage);
  for (const moduleResolution of ['NodeNext', 'Bundler']) {
    const config = {
      compilerOptions: {
        target: 'ES2022',
        module: moduleResolution === 'Bundler' ? 'ESNext' : 'NodeNext',
        moduleResolution,
        lib: ['ES2022', 'DOM'],
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: [],
      },
      files: ['usage.ts'],
    };
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(config));
    const tsc = join(PACKAGE_DIR, 'node_modules', 'typescript', 'bin', 'tsc');
    try {
      execFileSync(process.execPath, [tsc, '-p', dir], { cwd: dir, encoding: 'utf8' });
    } catch (error) {
      assert.fail(`tsc (${moduleResolution}) against the packed package failed:\n${error.stdout}`);
    }
  }
});

/** { path: sha256 } of the files in a packed tarball (names without npm's `package/` prefix). */
function tarballFiles(tarball) {
  const dir = mkdtempSync(join(tmpdir(), 'realtime-auth-unpacked-'));
  try {
    execFileSync('tar', ['-xzf', tarball, '-C', dir]);
    const root = join(dir, 'package');
    return Object.fromEntries(readdirSync(root, { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => {
        const path = join(entry.parentPath, entry.name);
        return [path.slice(root.length + 1), createHash('sha256').update(readFileSync(path)).digest('hex')];
      })
      .sort(([a], [b]) => a.localeCompare(b)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('each example carries the current helper as a committed tarball that its lock pins', (t) => {
  // A copied example installs with `npm ci` alone: the tarball travels with it, and the lock's
  // integrity holds it to those bytes. Stale after a change to the helper: run examples/pack-helper.
  const current = tarballFiles(pack(t).tarball);
  for (const name of EXAMPLES) {
    const dir = join(EXAMPLES_DIR, name);
    const { dependencies } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    assert.equal(dependencies[manifest.name], 'file:vendor/realtime-auth.tgz', name);
    const committed = join(dir, 'vendor', 'realtime-auth.tgz');
    assert.deepEqual(tarballFiles(committed), current, `${name}: vendor/realtime-auth.tgz is not the current helper; run examples/pack-helper`);
    const entry = JSON.parse(readFileSync(join(dir, 'package-lock.json'), 'utf8')).packages[`node_modules/${manifest.name}`];
    assert.equal(entry.resolved, 'file:vendor/realtime-auth.tgz', name);
    assert.equal(entry.version, manifest.version, name);
    const integrity = `sha512-${createHash('sha512').update(readFileSync(committed)).digest('base64')}`;
    assert.equal(entry.integrity, integrity, `${name}: package-lock.json pins another tarball; run examples/pack-helper`);
  }
});

test("the README's install recipe works as written, from an app that has no vendor/ yet", (t) => {
  const app = mkdtempSync(join(tmpdir(), 'your-app-'));
  t.after(() => rmSync(app, { recursive: true, force: true }));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'your-app', private: true, type: 'module' }));
  const readme = readFileSync(join(PACKAGE_DIR, 'README.md'), 'utf8');
  const recipe = readme.split('\n## Install\n')[1].match(/```sh\n([\s\S]*?)```/)[1];
  const script = recipe.replaceAll('/path/to/your-app', app).replaceAll('/path/to/appwrite-token-exchange/clients/js', PACKAGE_DIR);
  // The registry's appwrite from npm's cache when it has it; the recipe itself is unchanged.
  execFileSync('bash', ['-euo', 'pipefail', '-c', script], { cwd: PACKAGE_DIR, env: { ...process.env, npm_config_prefer_offline: 'true' }, stdio: 'pipe' });
  const { dependencies } = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8'));
  assert.equal(dependencies[manifest.name], `file:vendor/appwrite-token-exchange-realtime-auth-${manifest.version}.tgz`);
  assert.ok(dependencies.appwrite);
  const exported = execFileSync(process.execPath, ['--input-type=module', '-e', `import('${manifest.name}').then((m) => console.log(typeof m.realtimeAuth))`], { cwd: app, encoding: 'utf8' });
  assert.equal(exported.trim(), 'function');
});

test('the examples share one browser module (live.ts), copied byte for byte', () => {
  const paths = { nuxt: 'app/utils/live.ts', next: 'lib/live.ts', sveltekit: 'src/lib/live.ts' };
  const copies = EXAMPLES.map((name) => readFileSync(join(EXAMPLES_DIR, name, paths[name]), 'utf8'));
  for (const copy of copies.slice(1)) assert.equal(copy, copies[0]);
  assert.deepEqual(Object.keys(paths).sort(), readdirSync(EXAMPLES_DIR, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort());
});

test('the examples share one style sheet and one problems module (problems.ts), copied byte for byte', () => {
  const paths = {
    nuxt: ['app/assets/style.css', 'app/utils/problems.ts'],
    next: ['app/style.css', 'lib/problems.ts'],
    sveltekit: ['src/lib/style.css', 'src/lib/problems.ts'],
  };
  for (const file of [0, 1]) {
    const copies = EXAMPLES.map((name) => readFileSync(join(EXAMPLES_DIR, name, paths[name][file]), 'utf8'));
    for (const copy of copies.slice(1)) assert.equal(copy, copies[0], paths.nuxt[file]);
  }
});
