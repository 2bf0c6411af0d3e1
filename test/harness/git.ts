/** Plain git for tests and benchmarks: bare repositories to push to, and the commands to inspect them. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The environment without the caller's GIT_* variables, so a test sees only what it sets. */
export const plainGitEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GIT_')));

export interface GitIdentity {
  name: string;
  email: string;
}
const SEED: GitIdentity = { name: 'seed', email: 'seed@example.com' };

export function plainGit(cwd: string, args: string[], identity: GitIdentity = SEED, maxBuffer = 64 * 2 ** 20): string {
  return execFileSync('git', ['-c', `user.name=${identity.name}`, '-c', `user.email=${identity.email}`, ...args], {
    cwd,
    env: plainGitEnv,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer,
  });
}

/**
 * A bare repository with branch main; unless `seed` is false, main holds one
 * commit (README.md), so clones made from it share a history.
 */
export function initBareRepo(bare: string, scratch: string, opts: { seed?: boolean; identity?: GitIdentity } = {}): void {
  const git = (cwd: string, ...args: string[]) => plainGit(cwd, args, opts.identity);
  git(scratch, 'init', '--quiet', '--bare', '--initial-branch=main', bare);
  if (opts.seed === false) return;
  const work = mkdtempSync(join(scratch, 'seed-'));
  git(scratch, 'clone', '--quiet', bare, work);
  writeFileSync(join(work, 'README.md'), '# deploy\n');
  git(work, 'add', 'README.md');
  git(work, 'commit', '--quiet', '-m', 'seed');
  git(work, 'push', '--quiet', 'origin', 'HEAD:refs/heads/main');
  rmSync(work, { recursive: true, force: true });
}

/**
 * What a second writer does to a clone in the push-race tests: edit a file of
 * its own, or (`conflict`) the manifest kiln just changed, then commit.
 */
export function otherWriterCommit(clone: string, round: number, conflict: boolean, git: (cwd: string, ...args: string[]) => string): void {
  if (conflict) {
    writeFileSync(join(clone, 'clusters/dev/bulk/configmapsync/racer/manifest.yaml'), `# hand edit ${round}\n`);
  } else {
    mkdirSync(join(clone, 'apps'), { recursive: true });
    writeFileSync(join(clone, 'apps', `app-${round}.yaml`), `round: ${round}\n`);
  }
  git(clone, 'add', '-A');
  git(clone, 'commit', '--quiet', '-m', `other: round ${round}`);
}
