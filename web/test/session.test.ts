/** The key from `#key=` moves to sessionStorage (never localStorage) and leaves the address bar. */
import { afterEach, describe, expect, it } from 'vitest';
import { adoptKeyFromFragment, clearSessionKey, sessionKey } from '../src/session.js';

afterEach(() => {
  sessionStorage.clear();
  window.history.replaceState(null, '', '/');
});

describe('session key', () => {
  it('adopts the fragment key once and clears it', () => {
    window.history.replaceState(null, '', '/#key=dq_abc%2B1');
    expect(adoptKeyFromFragment()).toBe('dq_abc+1');
    expect(sessionKey()).toBe('dq_abc+1');
    expect(window.location.hash).toBe('#/');
    expect(window.location.href).not.toContain('dq_abc');
    expect(localStorage.length).toBe(0);
    expect(adoptKeyFromFragment()).toBeNull();
    clearSessionKey();
    expect(sessionKey()).toBeNull();
  });
  it('ignores a route fragment', () => {
    window.history.replaceState(null, '', '/#/jobs');
    expect(adoptKeyFromFragment()).toBeNull();
    expect(window.location.hash).toBe('#/jobs');
  });
});
