/**
 * The API key of the browser session: kept in sessionStorage (gone when the tab closes), never in localStorage.
 * `#key=<key>` in the URL (printed by `deqo demo`) is read once, moved to sessionStorage and cleared from the URL.
 */
const STORAGE_KEY = 'deqo.apiKey';

/** Moves a `#key=` fragment into the session (and out of the address bar and history). Returns the key, if any. */
export function adoptKeyFromFragment(loc: Location = window.location, hist: History = window.history): string | null {
  const m = /^#key=([^&]+)/.exec(loc.hash);
  if (!m) return null;
  const key = decodeURIComponent(m[1]!);
  sessionStorage.setItem(STORAGE_KEY, key);
  hist.replaceState(null, '', `${loc.pathname}${loc.search}#/`);
  return key;
}

/** The session's key, or null when signed out. */
export function sessionKey(): string | null {
  return sessionStorage.getItem(STORAGE_KEY);
}

/** Keeps `key` for this browser session. */
export function saveSessionKey(key: string): void {
  sessionStorage.setItem(STORAGE_KEY, key);
}

/** Forgets the key (sign out). */
export function clearSessionKey(): void {
  sessionStorage.removeItem(STORAGE_KEY);
}
