/**
 * CSV text to rows of string cells, RFC 4180 style: quoted fields may hold commas, doubled quotes
 * and line breaks. Blank lines are skipped, so a trailing newline adds no row.
 */
const QUOTE = '"';

export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let fieldWasQuoted = false;

  const endField = () => {
    row.push(field);
    field = '';
  };
  const endRow = () => {
    endField();
    const blank = row.length === 1 && row[0] === '' && !fieldWasQuoted;
    if (!blank) rows.push(row);
    row = [];
    fieldWasQuoted = false;
  };

  for (let i = text.startsWith('\uFEFF') ? 1 : 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch !== QUOTE) field += ch;
      else if (text[i + 1] === QUOTE) {
        field += QUOTE;
        i++;
      } else quoted = false;
    } else if (ch === QUOTE) {
      quoted = true;
      fieldWasQuoted = true;
    } else if (ch === ',') {
      endField();
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      endRow();
    } else {
      field += ch;
    }
  }
  endRow();
  return rows;
}
