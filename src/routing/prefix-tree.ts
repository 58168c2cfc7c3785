/**
 * A radix tree of string prefixes: `longestPrefixOf(text)` finds the value of the longest stored
 * prefix of `text` by walking the text once, so its cost depends on the length of the text, never
 * on how many prefixes are stored. Prefixes are raw strings compared code unit by code unit ("/chat"
 * is a prefix of "/chatroom"); storing the same prefix twice keeps the first value.
 */

interface PrefixNode<T> {
  /** The characters on the edge from the parent to this node (empty for the root). */
  label: string;
  /** The value of the prefix that ends exactly here, if one does. */
  value: T | undefined;
  /** Children by the first code unit of their label. */
  children: Map<number, PrefixNode<T>> | undefined;
}

function node<T>(label: string, value: T | undefined): PrefixNode<T> {
  return { label, value, children: undefined };
}

/** How many leading code units `label` shares with `text` from `start` on. */
function sharedLength(label: string, text: string, start: number): number {
  const limit = Math.min(label.length, text.length - start);
  let shared = 0;
  while (shared < limit && label.charCodeAt(shared) === text.charCodeAt(start + shared)) shared++;
  return shared;
}

export class PrefixTree<T> {
  readonly #root: PrefixNode<T> = node<T>('', undefined);

  /** Stores `value` under `prefix`, unless that prefix already has a value. */
  insert(prefix: string, value: T): void {
    let current = this.#root;
    let position = 0;
    for (;;) {
      if (position === prefix.length) {
        if (current.value === undefined) current.value = value;
        return;
      }
      current.children ??= new Map();
      const first = prefix.charCodeAt(position);
      const child = current.children.get(first);
      if (child === undefined) {
        current.children.set(first, node(prefix.slice(position), value));
        return;
      }
      const shared = sharedLength(child.label, prefix, position);
      if (shared < child.label.length) {
        // The new prefix leaves the edge part-way: split it at the point where they differ.
        const middle = node<T>(child.label.slice(0, shared), undefined);
        child.label = child.label.slice(shared);
        middle.children = new Map([[child.label.charCodeAt(0), child]]);
        current.children.set(first, middle);
        current = middle;
      } else {
        current = child;
      }
      position += shared;
    }
  }

  /** The value of the longest stored prefix of `text`, if any prefix matches. */
  longestPrefixOf(text: string): T | undefined {
    let current = this.#root;
    let best = current.value;
    let position = 0;
    while (current.children !== undefined) {
      const child = current.children.get(text.charCodeAt(position));
      if (child === undefined || !text.startsWith(child.label, position)) break;
      position += child.label.length;
      current = child;
      if (current.value !== undefined) best = current.value;
    }
    return best;
  }
}
