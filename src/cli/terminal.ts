/**
 * Text from others (a job's output, a provider's agent name, a failure's detail, a tarball's entry names) made safe to
 * print on a buyer's terminal: a hostile job could otherwise rewrite the screen, hide lines, set the window title,
 * write the clipboard (OSC 52) or plant a hyperlink (OSC 8). Escape sequences (ECMA-48: CSI, OSC/DCS/SOS/PM/APC
 * strings, other ESC sequences, their 8-bit C1 forms) are removed; any other C0 or C1 control character, and DEL, is
 * shown as `\xNN`. Line feeds and tabs stay in multi-line text, and so does a carriage return before a line feed.
 */

/** ESC-introduced and 8-bit sequences, removed whole: CSI, terminated control strings, two/three-char escapes. */
const SEQUENCE = new RegExp(
  [
    // CSI: ESC [ or 0x9B, parameter bytes, intermediate bytes, one final byte.
    '(?:\\x1b\\[|\\x9b)[\\x30-\\x3f]*[\\x20-\\x2f]*[\\x40-\\x7e]',
    // OSC, DCS, SOS, PM, APC up to BEL or ST (ESC \ or 0x9C). An unterminated one is left to be shown escaped.
    '(?:\\x1b[\\]PX^_]|[\\x90\\x98\\x9d\\x9e\\x9f])[^\\x07\\x1b\\x9c]*(?:\\x07|\\x1b\\\\|\\x9c)',
    // Any other escape: ESC, intermediate bytes, one final byte (ESC c, ESC 7, ESC ( B ...); not the introducers
    // above, so an unterminated one is shown.
    '\\x1b(?![[\\]PX^_])[\\x20-\\x2f]*[\\x30-\\x7e]',
  ].join('|'),
  'g',
);

/** Control characters left after the sequences are gone (C0 but \t and \n, DEL, C1), and a CR not before LF. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_MULTILINE = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)/g;
/** The same for one-line fields, where line feeds and tabs are escaped too. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_LINE = /[\x00-\x1f\x7f-\x9f]/g;

function escaped(c: string): string {
  return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
}

/** Multi-line text (a job's stdout or stderr) safe for a terminal: sequences removed, controls but \n, \t shown as \xNN. */
export function terminalText(text: string): string {
  return text.replace(SEQUENCE, '').replace(CONTROL_MULTILINE, escaped);
}

/** A one-line field (a name, a reason, a path) safe for a terminal: as terminalText, and \n, \t, \r shown as \xNN. */
export function terminalLine(text: string): string {
  return text.replace(SEQUENCE, '').replace(CONTROL_LINE, escaped);
}
