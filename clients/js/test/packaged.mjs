// The client as a user gets it: `npm pack` of this package, installed from
// that tarball into a scratch project in a temporary directory. The install
// is offline: the package has no dependencies, so nothing is fetched. With
// `{ react: true }` the project also gets React, React DOM (the hooks'
// peer) and React's types, at the versions this package develops with,
// from npm's cache, which this package's own `npm ci` has filled.

import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
/** This package's directory (clients/js). */
export const packageDir = path.resolve(here, "..");

/** Runs a command, returning its stdout; its stderr is shown only on failure. */
export function run(program, args, cwd, env = {}) {
  try {
    return execFileSync(program, args, {
      cwd,
      encoding: "utf8",
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (e) {
    throw new Error(`${program} ${args.join(" ")} (in ${cwd}) failed:\n${e.stdout ?? ""}${e.stderr ?? ""}`);
  }
}

/**
 * The React packages a project using the hooks installs (with React's
 * types, for TypeScript users), pinned as this package's dev dependencies.
 */
export function reactPackages() {
  const { devDependencies } = JSON.parse(readFileSync(path.join(packageDir, "package.json"), "utf8"));
  return ["react", "react-dom", "@types/react"].map((name) => `${name}@${devDependencies[name]}`);
}

/**
 * Packs the package and installs the tarball into a fresh scratch project
 * (with React when `react`). Returns the scratch project's directory
 * (`app`), the tarball, the packed file list, the URL its `import
 * "@longhouse/client"` resolves to, `resolve(specifier)` for any other
 * import as that project resolves it, and a `cleanup()` that removes it all.
 */
export function installPackaged({ react = false } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "longhouse-client-"));
  try {
    const [packed] = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", dir], packageDir));
    const tarball = path.join(dir, packed.filename);
    const app = path.join(dir, "app");
    mkdirSync(app);
    writeFileSync(
      path.join(app, "package.json"),
      JSON.stringify({ name: "scratch-app", version: "0.0.0", private: true, type: "module" }),
    );
    run(
      "npm",
      [
        "install",
        "--offline",
        "--no-audit",
        "--no-fund",
        "--ignore-scripts",
        "--no-package-lock",
        tarball,
        ...(react ? reactPackages() : []),
      ],
      app,
    );
    // Resolved the way the scratch project resolves it (exports, conditions).
    const resolve = (specifier) =>
      run(
        process.execPath,
        ["--input-type=module", "-e", `console.log(import.meta.resolve(${JSON.stringify(specifier)}))`],
        app,
      ).trim();
    const moduleUrl = resolve("@longhouse/client");
    return {
      dir,
      app,
      tarball,
      files: packed.files.map((f) => f.path).sort(),
      moduleUrl,
      resolve,
      cleanup: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
