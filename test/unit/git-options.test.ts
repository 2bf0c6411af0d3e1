import { describe, expect, it } from 'vitest';
import { gitOptions } from '../../cli/controller-command.js';

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
