// Build: copy the client into dist/ (no bundler: the browser loads the ES modules as they
// are), with socket.io-client's ESM build next to them and a config.js.
//
//   dist/index.html                 no-cache
//   dist/config.js                  no-cache; each server may answer it itself
//   dist/assets/<hash>/...          js/, styles.css, vendor/; content-addressed, so servers
//                                   may cache them forever (Cache-Control: immutable)
//
// MOP_API_BASE / MOP_WS_BASE override the production defaults written to config.js.

import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const src = join(root, 'src');
const dist = join(root, 'dist');
const require = createRequire(import.meta.url);
const vendorFile = join(dirname(require.resolve('socket.io-client/package.json')), 'dist', 'socket.io.esm.min.js');

const config = {
  apiBase: process.env.MOP_API_BASE || 'https://api.chat5202ol.xyz',
  wsBase: process.env.MOP_WS_BASE || 'https://ws-api.chat5202ol.xyz',
};
for (const [k, v] of Object.entries(config)) {
  if (!/^https?:\/\/[^/\s]+$/.test(v)) throw new Error(`${k}: want an origin like https://host[:port], got ${JSON.stringify(v)}`);
}

const files = (dir) => readdirSync(dir).flatMap((name) => {
  const p = join(dir, name);
  return statSync(p).isDirectory() ? files(p) : [p];
});
const assetFiles = files(src).filter((p) => !['index.html', 'config.js'].includes(relative(src, p)));

const hash = createHash('sha256');
for (const p of [...assetFiles, vendorFile].sort()) hash.update(relative(root, p)).update(readFileSync(p));
const assets = `assets/${hash.digest('hex').slice(0, 12)}`;

rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, assets, 'vendor'), { recursive: true });
for (const p of assetFiles) {
  const to = join(dist, assets, relative(src, p));
  mkdirSync(dirname(to), { recursive: true });
  cpSync(p, to);
}
cpSync(vendorFile, join(dist, assets, 'vendor', 'socket.io.esm.min.js'));

const html = readFileSync(join(src, 'index.html'), 'utf8')
  .replace('href="styles.css"', `href="${assets}/styles.css"`)
  .replace('src="js/app.js"', `src="${assets}/js/app.js"`);
if (!html.includes(assets + '/js/app.js')) throw new Error('index.html: app script tag not found');
writeFileSync(join(dist, 'index.html'), html);

const configJs = readFileSync(join(src, 'config.js'), 'utf8')
  .replace(/window\.MOP_CONFIG = .*;/, `window.MOP_CONFIG = ${JSON.stringify(config)};`);
writeFileSync(join(dist, 'config.js'), configJs);

console.log(`web: built ${relative(process.cwd(), dist) || '.'} (${assets}, api ${config.apiBase}, ws ${config.wsBase})`);
