// The client as a user gets it: `npm pack` of this package, installed from
// that tarball into a scratch project in a temporary directory. The install
// is offline: the package has no dependencies, so nothing is fetched.

import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
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
 * Packs the package and installs the tarball into a fresh scratch project.
 * Returns the scratch project's directory (`app`), the tarball, the packed
 * file list, the URL its `import "@longhouse/client"` resolves to, and a
 * `cleanup()` that removes it all.
 */
export function installPackaged() {
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
      ["install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", "--no-package-lock", tarball],
      app,
    );
    // Resolved the way the scratch project resolves it (exports, conditions).
    const moduleUrl = run(
      process.execPath,
      ["--input-type=module", "-e", 'console.log(import.meta.resolve("@longhouse/client"))'],
      app,
    ).trim();
    return {
      dir,
      app,
      tarball,
      files: packed.files.map((f) => f.path).sort(),
      moduleUrl,
      cleanup: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
