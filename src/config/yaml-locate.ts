/**
 * Finding things in a parsed YAML document: the node at a config path (following aliases, as far
 * as the path exists), the source offset a problem should point at, and the path at an offset.
 * This is what turns a schema issue's path into a line and column.
 */
import { type Document, isAlias, isCollection, isMap, isScalar, isSeq, type Node } from 'yaml';

export type Path = readonly PropertyKey[];

/** Problems are collected with a source offset (or none) and turned into lines and columns at the end. */
export interface PendingProblem {
  readonly offset: number | undefined;
  readonly path: Path;
  readonly message: string;
}

// ---------------------------------------------------------------------------------------------
// YAML node lookup

export function keyText(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key);
}

export interface Located {
  /** The node at the deepest path segment that exists (null when a key has no value). */
  readonly node: Node | null;
  /** The key of the last map entry walked through, if any. */
  readonly key: Node | undefined;
  /** True when every segment of the path exists in the document. */
  readonly complete: boolean;
  /** The document's top-level node. */
  readonly root: Node | null;
}

/** Walks `path` through the document, following aliases, as far as it exists. */
export function locate(doc: Document, path: Path): Located {
  let node: Node | null = doc.contents;
  let key: Node | undefined;
  for (const segment of path) {
    const current: Node | null | undefined = isAlias(node) ? node.resolve(doc) : node;
    let next: Node | null | undefined;
    let nextKey: Node | undefined;
    if (isMap(current)) {
      const pair = current.items.find((item) => keyText(item.key) === String(segment));
      if (pair) {
        next = isCollection(pair.value) || isScalar(pair.value) || isAlias(pair.value) ? pair.value : null;
        nextKey = isScalar(pair.key) ? pair.key : undefined;
      }
    } else if (isSeq(current) && typeof segment === 'number') {
      const item = current.items[segment];
      if (isCollection(item) || isScalar(item) || isAlias(item)) next = item;
    }
    if (next === undefined) return { node, key, complete: false, root: doc.contents };
    node = next;
    key = nextKey;
  }
  return { node, key, complete: true, root: doc.contents };
}

/** Where to point for a problem about `located`: a key for collections, the value otherwise. */
export function offsetOf(located: Located): number | undefined {
  const { node, key } = located;
  // A top-level key that is missing has nowhere better to point than the whole file.
  if (!located.complete && node === located.root) return undefined;
  if (key?.range && (node === null || isCollection(node))) return key.range[0];
  return node?.range?.[0];
}

/** The start and end offsets of a node, if it has a position. */
export function span(node: unknown): readonly [number, number] | undefined {
  if (!(isCollection(node) || isScalar(node) || isAlias(node)) || !node.range) return undefined;
  return [node.range[0], node.range[2]];
}

export function contains(range: readonly [number, number] | undefined, offset: number): boolean {
  return range !== undefined && offset >= range[0] && offset < range[1];
}

/** The path to the innermost entry holding `offset`, and the key written there when it is in a key. */
export function pathAtOffset(doc: Document, offset: number): { path: Path; key: Node | undefined } {
  const path: PropertyKey[] = [];
  let node: unknown = doc.contents;
  for (;;) {
    if (isMap(node)) {
      const pair = node.items.find((item) => {
        const start = span(item.key)?.[0] ?? span(item.value)?.[0];
        const end = span(item.value)?.[1] ?? span(item.key)?.[1];
        return start !== undefined && end !== undefined && contains([start, end], offset);
      });
      if (!pair) break;
      if (contains(span(pair.key), offset)) return { path, key: isScalar(pair.key) ? pair.key : undefined };
      path.push(keyText(pair.key));
      node = pair.value;
    } else if (isSeq(node)) {
      const index = node.items.findIndex((item) => contains(span(item), offset));
      if (index === -1) break;
      path.push(index);
      node = node.items[index];
    } else {
      break;
    }
  }
  return { path, key: undefined };
}
