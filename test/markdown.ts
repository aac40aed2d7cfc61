/** Just enough Markdown for the documentation tests: fenced code blocks, links and heading anchors. */

export interface CodeBlock {
  /** The first word of the fence's info string (`sh` in ```` ```sh no-run: why ````). */
  readonly lang: string;
  /** The rest of the info string. */
  readonly flags: string;
  readonly body: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
}

const FENCE = /^\s*(`{3,})\s*(.*)$/;

export function codeBlocks(markdown: string): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    // A fence closes on a line of at least as many backticks and nothing else.
    const closing = new RegExp(`^\\s*\`{${open[1]!.length},}\\s*$`);
    while (++i < lines.length && !closing.test(lines[i]!)) body.push(lines[i]!);
    const [lang = '', ...flags] = open[2]!.trim().split(/\s+/);
    blocks.push({ lang, flags: flags.join(' '), body: body.join('\n'), line: start + 1 });
  }
  return blocks;
}

/** The text with fenced code blocks blanked, line numbers kept. */
function withoutFences(markdown: string): string {
  const lines = markdown.split('\n');
  for (const block of codeBlocks(markdown)) {
    const closing = block.line + block.body.split('\n').length;
    for (let i = block.line - 1; i <= closing && i < lines.length; i++) lines[i] = '';
  }
  return lines.join('\n');
}

/** A code span runs between equal runs of backticks. */
const CODE_SPAN = /(?<!`)(`+)(?!`)([\s\S]*?)(?<!`)\1(?!`)/g;

/** Targets of inline links and images, `[text](target)`, outside code. */
export function linkTargets(markdown: string): string[] {
  const prose = withoutFences(markdown).replace(CODE_SPAN, '');
  return [...prose.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((match) => match[1]!);
}

/** The anchors GitHub gives the headings: lower case, punctuation dropped, spaces as hyphens, repeats numbered. */
export function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of withoutFences(markdown).split('\n')) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const text = heading.replace(CODE_SPAN, '$2').replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1');
    const slug = text.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replaceAll(' ', '-');
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return anchors;
}
