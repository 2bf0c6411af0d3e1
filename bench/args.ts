/** `--name value` flags for the benchmark scripts. */
export function flags(argv: string[] = process.argv.slice(2)) {
  return {
    get: (name: string, dflt: string): string => {
      const i = argv.indexOf(`--${name}`);
      return i >= 0 ? argv[i + 1]! : dflt;
    },
    has: (name: string): boolean => argv.includes(`--${name}`),
  };
}
