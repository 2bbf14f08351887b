#!/usr/bin/env node
// Launcher for `npx replica-guard`. The CLI is TypeScript run by Node's type stripping,
// which needs Node 24; an older node on the PATH would fail with an obscure syntax error,
// so say what to do instead. Kept to syntax every Node version can parse.

const major = Number(process.versions.node.split('.')[0]);
if (!(major >= 24)) {
  process.stderr.write(
    `replica-guard needs Node.js 24 or later, but this is Node.js ${process.versions.node}.\n` +
      'Run it through npm or npx from the project (npx replica-guard ..., npm run ...) ' +
      "so that the project's own Node 24 is used.\n",
  );
  process.exitCode = 1;
} else {
  const cli = await import('../src/cli/main.ts');
  await cli.main(process.argv.slice(2));
}
