// Bounded multi-document YAML: every pod author writes this input, so no document may
// exhaust the daemon. Only the yaml library's lexer is iterative: its parser, composer
// and toJS() recurse. So the lexer cuts the text into documents and bounds their flow
// and block nesting before the parser sees them, the CST's exact depth is checked before
// the composer sees it, and aliases are capped by the library's own maxAliasCount. Each
// limit skips one document; the others apply.
import { Composer, CST, Lexer, Parser } from 'yaml';

export const YAML_LIMITS = Object.freeze({
  /** Bytes in the whole file (checked before reading it). */
  fileBytes: 64 * 1024 * 1024,
  /** Bytes in one document: etcd's own object limit is 1.5 MiB. */
  documentBytes: 2 * 1024 * 1024,
  /** Nested collections in one document; Kubernetes objects need fewer than 20. */
  depth: 64,
  /** Columns of indentation plus block indicators on one line, checked before parsing. */
  blockBound: 256,
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

interface Segment {
  start: number;
  end: number;
  /** Deepest flow collection ([ and {). */
  flow: number;
  /** A bound on block nesting: a line's indentation plus its `-`, `?` and `:` indicators. */
  block: number;
}

const CONTROL = new Set<string>([CST.DOCUMENT, CST.FLOW_END, CST.SCALAR]); // not in the source

/**
 * The text cut at each `---`, measured by the lexer (iterative, unlike the parser, whose
 * flow and block handling recurse: a few thousand levels overflow the stack).
 */
function segments(text: string): Segment[] {
  const out: Segment[] = [];
  let cur: Segment = { start: 0, end: 0, flow: 0, block: 0 };
  let offset = 0;
  let depth = 0;
  let lineStart = true;
  let indent = 0;
  let indicators = 0;
  for (const tok of new Lexer().lex(text)) {
    if (CONTROL.has(tok)) continue;
    const type = CST.tokenType(tok);
    if (type === 'doc-start') {
      out.push({ ...cur, end: offset });
      cur = { start: offset, end: 0, flow: 0, block: 0 };
      depth = 0;
    } else if (type === 'newline') {
      lineStart = true;
      indent = 0;
      indicators = 0;
    } else if (type === 'space' && lineStart) indent = tok.length;
    else if (type === 'seq-item-ind' || type === 'explicit-key-ind' || type === 'map-value-ind') cur.block = Math.max(cur.block, indent + ++indicators);
    else if (type === 'flow-seq-start' || type === 'flow-map-start') cur.flow = Math.max(cur.flow, ++depth);
    else if (type === 'flow-seq-end' || type === 'flow-map-end') depth = Math.max(0, depth - 1);
    if (type !== 'newline') lineStart = false;
    offset += tok.length;
  }
  out.push({ ...cur, end: text.length });
  return out.filter((seg) => seg.end > seg.start);
}

const tooDeep = `YAML nested more than ${YAML_LIMITS.depth} levels deep; flatten it`;

/** Every document of `text` in order: its plain value, or why it was skipped. */
export function parseDocuments(text: string): YamlDocument[] {
  const out: YamlDocument[] = [];
  for (const seg of segments(text)) {
    if (seg.end - seg.start > YAML_LIMITS.documentBytes) {
      out.push({ error: `document is ${seg.end - seg.start} bytes, over the limit of ${YAML_LIMITS.documentBytes}; split it` });
    } else if (seg.flow > YAML_LIMITS.depth || seg.block > YAML_LIMITS.blockBound) out.push({ error: tooDeep });
    else {
      try {
        out.push(...parseSegment(text.slice(seg.start, seg.end)));
      } catch (e) {
        if (!(e instanceof RangeError)) throw e;
        out.push({ error: tooDeep }); // the stack, despite the bounds: still one document
      }
    }
  }
  return out;
}

/** The documents of one segment (one, or none for comments): parsed, measured, composed. */
function parseSegment(text: string): YamlDocument[] {
  const out: YamlDocument[] = [];
  let prelude: CST.Token[] = []; // directives and comments belong to the next document
  for (const tok of new Parser().parse(text)) {
    if (tok.type !== 'document') {
      if (tok.type === 'error') out.push({ error: `YAML error: ${tok.message}; fix the YAML syntax` });
      else prelude.push(tok);
      continue;
    }
    const docTokens = [...prelude, tok];
    prelude = [];
    if (depthOf(tok, YAML_LIMITS.depth) > YAML_LIMITS.depth) {
      out.push({ error: tooDeep });
      continue;
    }
    for (const doc of new Composer({ prettyErrors: false }).compose(docTokens)) {
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
  }
  return out;
}
