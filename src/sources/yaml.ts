// Bounded multi-document YAML: every pod author writes this input, so no document may
// exhaust the daemon. The yaml library's CST parser is iterative; its composer and toJS()
// recurse, so a document is measured (size, nesting depth) before it is composed, and
// aliases are capped by the library's own maxAliasCount. Each limit skips one document.
import { Composer, Parser, type CST } from 'yaml';

export const YAML_LIMITS = Object.freeze({
  /** Bytes in the whole file (checked before reading it). */
  fileBytes: 64 * 1024 * 1024,
  /** Bytes in one document: etcd's own object limit is 1.5 MiB. */
  documentBytes: 2 * 1024 * 1024,
  /** Nested collections in one document; Kubernetes objects need fewer than 20. */
  depth: 64,
  /** Alias expansions in one document (yaml's maxAliasCount). */
  aliases: 100,
});

export type YamlDocument = { value: unknown } | { error: string };

/** Collection nesting of a CST token, walked with an explicit stack (never recursion). */
function depthOf(root: CST.Token, limit: number): number {
  let max = 0;
  const stack: [CST.Token | null | undefined, number][] = [[root, 0]];
  while (stack.length > 0) {
    const [tok, depth] = stack.pop()!;
    if (!tok) continue;
    if (tok.type === 'document') stack.push([tok.value, depth]);
    else if (tok.type === 'block-map' || tok.type === 'block-seq' || tok.type === 'flow-collection') {
      const d = depth + 1;
      if (d > max) max = d;
      if (max > limit) return max; // deep enough to refuse; no need to walk the rest
      for (const item of tok.items) {
        if ('key' in item) stack.push([item.key, d]);
        if ('value' in item) stack.push([item.value, d]);
      }
    }
  }
  return max;
}

/** Every document of `text` in order: its plain value, or why it was skipped. */
export function parseDocuments(text: string): YamlDocument[] {
  const tokens = [...new Parser().parse(text)];
  const out: YamlDocument[] = [];
  let prelude: CST.Token[] = []; // directives and comments belong to the next document
  tokens.forEach((tok, i) => {
    if (tok.type !== 'document') {
      if (tok.type === 'error') out.push({ error: `YAML error: ${tok.message}; fix the YAML syntax` });
      else prelude.push(tok);
      return;
    }
    const end = tokens[i + 1]?.offset ?? text.length;
    const docTokens = [...prelude, tok];
    prelude = [];
    if (end - tok.offset > YAML_LIMITS.documentBytes) {
      out.push({ error: `document is ${end - tok.offset} bytes, over the limit of ${YAML_LIMITS.documentBytes}; split it` });
      return;
    }
    const depth = depthOf(tok, YAML_LIMITS.depth);
    if (depth > YAML_LIMITS.depth) {
      out.push({ error: `YAML nested more than ${YAML_LIMITS.depth} levels deep; flatten it` });
      return;
    }
    const composer = new Composer({ prettyErrors: false });
    for (const doc of [...composer.compose(docTokens)]) {
      if (doc.errors.length > 0) {
        out.push({ error: `YAML error: ${doc.errors[0]!.message.split('\n')[0]}; fix the YAML syntax` });
        continue;
      }
      try {
        out.push({ value: doc.toJS({ maxAliasCount: YAML_LIMITS.aliases }) });
      } catch (e) {
        out.push({ error: `YAML aliases expand too far (${(e as Error).message}); at most ${YAML_LIMITS.aliases} alias uses per document` });
      }
    }
  });
  return out;
}
