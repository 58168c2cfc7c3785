/** A problem found by the semantic checks (semantics.ts and the checks it runs), at a path into the configuration. */
export interface SemanticProblem {
  readonly path: readonly (string | number)[];
  readonly message: string;
}
