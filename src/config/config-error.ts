/**
 * The one error type configuration loading throws. It carries every problem found in a file (not
 * just the first), each with its position, so that `wsgate check` and a failed start can show
 * them all at once in a compiler-like format that editors and terminals turn into links.
 */

/** One thing wrong with a configuration file. */
export interface ConfigProblem {
  /** The file as the user named it. */
  readonly file: string;
  /** 1-based line; 0 when the problem has no position (e.g. the file cannot be read). */
  readonly line: number;
  /** 1-based column; 0 when the problem has no position. */
  readonly column: number;
  /** Where in the configuration, as `pools.chat.backends[2]`; empty for the document itself. */
  readonly path: string;
  readonly message: string;
}

/** Formats a key path as `a.b[2].c`: keys joined by dots, array indices in brackets. */
export function formatPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else text += text === '' ? String(segment) : `.${String(segment)}`;
  }
  return text;
}

function formatProblem(problem: ConfigProblem): string {
  const where = problem.line > 0 ? `${problem.file}:${problem.line}:${problem.column}` : problem.file;
  if (problem.path === '') return `${where}: ${problem.message}`;
  return problem.line > 0
    ? `${where} ${problem.path}: ${problem.message}`
    : `${where}: ${problem.path}: ${problem.message}`;
}

function byPosition(a: ConfigProblem, b: ConfigProblem): number {
  return a.line - b.line || a.column - b.column;
}

/** Thrown when a configuration file cannot be used; `problems` lists everything wrong with it. */
export class ConfigError extends Error {
  /** Every problem, sorted by line then column (problems without a position first). */
  readonly problems: readonly ConfigProblem[];
  readonly file: string;

  constructor(file: string, problems: readonly ConfigProblem[]) {
    const sorted = Object.freeze([...problems].sort(byPosition));
    const count = sorted.length === 1 ? '1 problem' : `${sorted.length} problems`;
    super(`invalid configuration in ${file} (${count})\n${sorted.map(formatProblem).join('\n')}`);
    this.name = 'ConfigError';
    this.file = file;
    this.problems = sorted;
  }

  /** One line per problem: `config.yaml:14:7 pools.chat.backends[2]: must be http: or https:`. */
  format(): string {
    return this.problems.map(formatProblem).join('\n');
  }
}
