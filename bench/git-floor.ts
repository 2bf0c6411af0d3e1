/**
 * The floor for git mode's change -> remote time: what a plain script needs
 * to publish the tree kiln pushed, `git add -A && git commit && git push`, on
 * the same disk with the same git. The files are already in the work tree
 * when the clock starts (a script writing them is not the floor: kiln's render
 * is part of what is compared), and the clock stops, as kiln's does, at the
 * post-receive hook of the receiving bare repository.
 *
 * Each sample gets a fresh bare repository holding kiln's history up to the
 * parent, so the push sends exactly the objects kiln's push sent, and a clone
 * of it in which `git apply` has written the parent..target difference (only
 * the files kiln's commit changed are touched, as a script rewriting its
 * output would). The floor commit's tree must equal kiln's: the same bytes.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { plainGit, plainGitEnv } from '../test/harness/git.js';

export interface FloorSample {
  /** from the start of `git add` to the post-receive hook of the floor's bare repository */
  seconds: number;
  /** until the script exited (push's own wait for the remote's answer included) */
  scriptSeconds: number;
}

export interface FloorResult {
  /** median of the samples */
  seconds: number;
  scriptSeconds: number;
  samples: FloorSample[];
  /** files the commit adds, changes or removes (the same for every sample) */
  filesChanged: number;
  /** the floor commit's tree is kiln's tree, object for object */
  treeMatches: boolean;
}

const IDENTITY = { name: 'floor script', email: 'floor@example.com' };
const BUFFER = 512 * 2 ** 20;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Publishes `to`'s tree from kiln's bare repository `source` as one commit on
 * top of `from`, `runs` times, each in a fresh bare repository under `scratch`.
 */
export async function gitFloor(source: string, from: string, to: string, scratch: string, runs = 3): Promise<FloorResult> {
  const git = (cwd: string, ...args: string[]) => plainGit(cwd, args, IDENTITY, BUFFER);
  const patch = execFileSync('git', ['diff', '--binary', '--no-renames', from, to], { cwd: source, env: plainGitEnv, maxBuffer: BUFFER });
  const filesChanged = git(source, 'diff', '--name-only', '--no-renames', from, to).split('\n').filter(Boolean).length;
  const kilnTree = git(source, 'rev-parse', `${to}^{tree}`).trim();
  const samples: FloorSample[] = [];
  let treeMatches = true;
  for (let run = 0; run < runs; run++) {
    const dir = mkdtempSync(join(scratch, 'floor-'));
    try {
      const bare = join(dir, 'deploy.git');
      const work = join(dir, 'work');
      const stamps = join(dir, 'pushes.log');
      git(dir, 'init', '--quiet', '--bare', '--initial-branch=main', bare);
      git(source, 'push', '--quiet', bare, `${from}:refs/heads/main`);
      // The hook bench/git.ts puts in kiln's bare repository, installed after the seeding push.
      const hook = join(bare, 'hooks', 'post-receive');
      writeFileSync(hook, `#!/bin/sh\nwhile read old new ref; do echo "$(date +%s%N) $new $ref" >> '${stamps}'; done\n`);
      chmodSync(hook, 0o755);
      git(dir, 'clone', '--quiet', bare, work);
      // A long-lived work tree's index is not racy: files checked out in the second the index was
      // written would be hashed again by `git add`, work a script's own work tree does not have.
      await sleep(1100);
      git(work, 'update-index', '-q', '--refresh');
      execFileSync('git', ['apply', '--whitespace=nowarn', '-'], { cwd: work, env: plainGitEnv, input: patch, maxBuffer: BUFFER });

      const started = Date.now();
      const script = spawnSync('sh', ['-c', 'git add -A && git commit --quiet -m "publish rendered manifests" && git push --quiet origin HEAD:refs/heads/main'], {
        cwd: work,
        env: { ...plainGitEnv, GIT_AUTHOR_NAME: IDENTITY.name, GIT_AUTHOR_EMAIL: IDENTITY.email, GIT_COMMITTER_NAME: IDENTITY.name, GIT_COMMITTER_EMAIL: IDENTITY.email },
        encoding: 'utf8',
      });
      const ended = Date.now();
      if (script.status !== 0) throw new Error(`floor script failed (${script.status}): ${script.stderr}`);
      const stamp = readFileSync(stamps, 'utf8').trim().split('\n').at(-1)!.split(' ');
      const pushedAt = Number(BigInt(stamp[0]!) / 1_000_000n);
      treeMatches &&= git(bare, 'rev-parse', 'main^{tree}').trim() === kilnTree;
      samples.push({ seconds: (pushedAt - started) / 1000, scriptSeconds: (ended - started) / 1000 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return {
    seconds: median(samples.map((s) => s.seconds)),
    scriptSeconds: median(samples.map((s) => s.scriptSeconds)),
    samples,
    filesChanged,
    treeMatches,
  };
}
