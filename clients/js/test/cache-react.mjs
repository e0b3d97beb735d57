// Puts the React packages the packaged tests install offline (react,
// react-dom and React's types, at this package's dev versions, and what
// they depend on) into npm's cache with their registry metadata: one
// online install into a scratch project, removed after. `npm ci` caches
// only tarballs, and an offline `npm install name@version` also needs the
// metadata, which a new machine may not have (seen: ENOTCACHED for
// @types/react, then for csstype).

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

import { reactPackages, run } from "./packaged.mjs";

const dir = mkdtempSync(path.join(os.tmpdir(), "longhouse-react-cache-"));
try {
  writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "react-cache", private: true }));
  run("npm", ["install", "--no-audit", "--no-fund", "--ignore-scripts", "--no-package-lock", ...reactPackages()], dir);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
