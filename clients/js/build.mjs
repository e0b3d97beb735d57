// The build: each entry (the client, its React hooks) bundled by esbuild
// into one ES module in dist/ (the native server and the Worker embed
// dist/index.js for the demo page, which loads it as one file), and the
// declarations from tsc. `node build.mjs [outdir]`; the default is dist.
// The hooks' module imports the client's as `./index.js`, and React by
// name: neither is bundled into it.

import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.resolve(process.argv[2] ?? path.join(here, "dist"));

rmSync(outdir, { recursive: true, force: true });

/**
 * Keeps every import of the client's entry (only the hooks' modules have
 * one) as an import of the sibling module, so there is one client.
 */
const clientStaysExternal = {
  name: "client-stays-external",
  setup(b) {
    b.onResolve({ filter: /^\.\/index\.js$/ }, () => ({ path: "./index.js", external: true }));
  },
};

await build({
  absWorkingDir: here,
  entryPoints: ["src/index.ts", "src/react.ts"],
  outdir,
  bundle: true,
  format: "esm",
  platform: "neutral",
  target: "es2020",
  external: ["react"],
  plugins: [clientStaysExternal],
  legalComments: "none",
  logLevel: "warning",
});

execFileSync(
  process.execPath,
  [path.join(here, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json", "--emitDeclarationOnly", "--outDir", outdir],
  { cwd: here, stdio: "inherit" },
);
