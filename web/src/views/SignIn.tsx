/** Sign-in: an API key, checked with /v1/whoami, kept for this browser session only. */
import { useState, type FormEvent } from 'react';
import type { WhoAmI } from '../../../src/protocol/index.js';
import { DashboardApi } from '../api.js';
import { Field } from '../components/Field.js';

/** The sign-in form; `onSignedIn` gets the key and its account once the coordinator accepted it. */
export function SignIn({
  baseUrl,
  onSignedIn,
  initialError,
}: {
  baseUrl: string;
  onSignedIn: (key: string, me: WhoAmI) => void;
  initialError?: string | undefined;
}) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | undefined>(initialError);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!key.trim()) {
      setError('Enter an API key (deqo account keys, or the key `deqo demo` printed).');
      return;
    }
    setBusy(true);
    try {
      onSignedIn(key.trim(), await new DashboardApi(baseUrl, key.trim()).client.whoami());
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="page signin">
      <h1>Deqo</h1>
      <p>Sign in with an API key. It stays in this browser tab only and is sent to this coordinator alone.</p>
      <form onSubmit={submit} className="card" noValidate>
        <Field label="API key" error={error}>
          <input type="password" autoComplete="off" value={key} onChange={(e) => setKey(e.target.value)} autoFocus />
        </Field>
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
