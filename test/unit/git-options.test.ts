import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gitOptions } from '../../cli/controller-command.js';
import { GitRepoWriter } from '../../gitops/repo.js';

const root = new URL('../../', import.meta.url).pathname;

const base = { repo: 'https://github.com/platform/deploy.git', branch: 'main', basePath: 'clusters', cluster: 'prod', debounce: 2000, maxWait: 30000 };

describe('git-mode flags', () => {
  it('--review pushes to <branch>-next and opens pull requests with the push token', async () => {
    const o = await gitOptions({ ...base, review: true }, { KILN_GIT_TOKEN: 't0ken' });
    expect(o.reviewBranch).toBe('main-next');
    expect(o.pullRequests).toBeDefined();
  });
  it('--review-branch names the branch; --pull-request-api none only pushes it', async () => {
    const o = await gitOptions({ ...base, reviewBranch: 'kiln/review', pullRequestApi: 'none' }, {});
    expect(o.reviewBranch).toBe('kiln/review');
    expect(o.pullRequests).toBeUndefined();
  });
  it('refuses review with pull requests but no token, and a Gitea host without its API URL', async () => {
    await expect(gitOptions({ ...base, review: true }, {})).rejects.toThrow(/needs a token/);
    await expect(gitOptions({ ...base, repo: 'https://gitea.example.com/platform/deploy.git', review: true }, { KILN_GIT_TOKEN: 't' })).rejects.toThrow();
  });
  it('without review, pushes to the branch itself; author and committer are configurable', async () => {
    const o = await gitOptions({ ...base, author: 'Platform Team <platform@example.com>', committer: 'kiln bot <bot@example.com>' }, {});
    expect(o.author).toEqual({ name: 'Platform Team', email: 'platform@example.com' });
    expect(o.committer).toEqual({ name: 'kiln bot', email: 'bot@example.com' });
    expect(o.reviewBranch).toBeUndefined();
    expect(o.pullRequests).toBeUndefined();
  });
});

describe('git-mode flags at the trust boundary (issue #19)', () => {
  it('--cluster is required: no shared "default" directory for every cluster', async () => {
    await expect(gitOptions({ ...base, cluster: undefined }, {})).rejects.toThrow(/--mode git needs --cluster <name>/);
  });
  it('refuses credentials in --repo, pointing at --git-token-file', async () => {
    await expect(gitOptions({ ...base, repo: 'https://bot:ghp_secret123@github.com/platform/deploy.git' }, {})).rejects.toThrow(/must not hold credentials.*--git-token-file/);
    expect(() => new GitRepoWriter({ url: 'https://ghp_secret123@github.com/platform/deploy.git', branch: 'main', workDir: '/nonexistent', basePath: 'clusters' })).toThrow(
      /must not hold credentials/,
    );
  });
  it('refuses plain http:// for Git and the pull-request API unless --allow-insecure-http', async () => {
    await expect(gitOptions({ ...base, repo: 'http://git.example.com/platform/deploy.git' }, {})).rejects.toThrow(/http:\/\/.*--allow-insecure-http/);
    await expect(gitOptions({ ...base, review: true, pullRequestApi: 'http://api.example.com' }, { KILN_GIT_TOKEN: 't0ken' })).rejects.toThrow(/http:\/\/.*--allow-insecure-http/);
    const o = await gitOptions({ ...base, repo: 'http://127.0.0.1:1/platform/deploy.git', review: true, pullRequestApi: 'http://127.0.0.1:1', allowInsecureHttp: true }, { KILN_GIT_TOKEN: 't0ken' });
    expect(o.pullRequests).toBeDefined();
    expect(o.allowInsecureHttp).toBe(true);
  });
  it('reads --git-token-file again when it changes (a rotated token)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-token-'));
    try {
      const file = join(dir, 'token');
      writeFileSync(file, 'first-token\n');
      const o = await gitOptions({ ...base, gitTokenFile: file }, {});
      const auth = o.auth as () => { token: string };
      expect(auth().token).toBe('first-token');
      writeFileSync(file, 'second-token-rotated\n');
      expect(auth().token).toBe('second-token-rotated');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('documents --allow-mass-delete and --allow-insecure-http in --help; --cluster has no default', () => {
    const help = execFileSync(process.execPath, [join(root, 'bin/kiln.js'), 'controller', '--help'], { encoding: 'utf8' });
    expect(help).toMatch(/--allow-mass-delete/);
    expect(help).toMatch(/--allow-insecure-http/);
    expect(help).not.toMatch(/--cluster <name>[^\n]*\(default: "default"\)/);
  });
});
