/**
 * Splits a command line into argv the way a POSIX shell splits words (no expansion): whitespace separates,
 * single quotes keep everything, double quotes keep all but `\"` and `\\`, a backslash escapes the next character.
 * Throws on an unclosed quote.
 */
export function splitCommand(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (/\s/.test(c)) {
      if (inWord) {
        out.push(cur);
        cur = '';
        inWord = false;
      }
      continue;
    }
    inWord = true;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error('unclosed single quote');
      cur += line.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && (line[j + 1] === '"' || line[j + 1] === '\\')) j++;
        cur += line[j];
      }
      if (j >= line.length) throw new Error('unclosed double quote');
      i = j;
    } else if (c === '\\' && i + 1 < line.length) {
      cur += line[++i];
    } else cur += c;
  }
  if (inWord) out.push(cur);
  return out;
}
