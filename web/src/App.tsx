/** The dashboard shell: sign-in gate, header navigation by the key's scope, hash routing to the views. */
import { useEffect, useMemo, useState } from 'react';
import type { WhoAmI } from '../../src/protocol/index.js';
import { DashboardApi } from './api.js';
import { LiveProvider, useLiveMode } from './live.js';
import { SessionContext } from './session-context.js';
import { adoptKeyFromFragment, clearSessionKey, saveSessionKey, sessionKey } from './session.js';
import { SignIn } from './views/SignIn.js';
import { Jobs } from './views/Jobs.js';
import { JobDetail } from './views/JobDetail.js';
import { Submit } from './views/Submit.js';
import { CodeRunner } from './views/CodeRunner.js';
import { Provider } from './views/Provider.js';
import { Network } from './views/Network.js';

/** The path after `#` (e.g. `/jobs/abc`), following hash changes. */
export function useHashPath(): string {
  const read = () => window.location.hash.replace(/^#/, '') || '/';
  const [path, setPath] = useState(read);
  useEffect(() => {
    const on = () => setPath(read());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return path;
}

const NAV: Array<{ href: string; label: string; scopes: string[] }> = [
  { href: '#/jobs', label: 'Jobs', scopes: ['buyer'] },
  { href: '#/submit', label: 'Submit', scopes: ['buyer'] },
  { href: '#/run', label: 'Code runner', scopes: ['buyer'] },
  { href: '#/provider', label: 'Provider', scopes: ['provider'] },
  { href: '#/network', label: 'Network', scopes: ['buyer', 'provider', 'admin'] },
];

function LiveIndicator() {
  const mode = useLiveMode();
  const text = mode === 'live' ? 'live' : mode === 'polling' ? 'updating every 2 s' : 'connecting…';
  return (
    <span className={`live live-${mode}`} title="How this page stays up to date">
      {text}
    </span>
  );
}

function Routed({ path, scope }: { path: string; scope: string }) {
  const jobMatch = /^\/jobs\/([A-Za-z0-9_-]+)$/.exec(path);
  if (jobMatch) return <JobDetail jobId={jobMatch[1]!} />;
  switch (path) {
    case '/jobs':
      return <Jobs />;
    case '/submit':
      return <Submit />;
    case '/run':
      return <CodeRunner />;
    case '/provider':
      return <Provider />;
    case '/network':
      return <Network />;
    default:
      return scope === 'buyer' ? <Jobs /> : scope === 'provider' ? <Provider /> : <Network />;
  }
}

/** The app: signs in (key from `#key=`, the session, or the form), then shows the views. */
export function App({ baseUrl = window.location.origin }: { baseUrl?: string }) {
  const [key, setKey] = useState<string | null>(() => adoptKeyFromFragment() ?? sessionKey());
  const [me, setMe] = useState<WhoAmI | null>(null);
  const [startError, setStartError] = useState<string>();
  const api = useMemo(() => (key ? new DashboardApi(baseUrl, key) : null), [key, baseUrl]);
  const path = useHashPath();
  // A `#key=` pasted into an open tab is a hash change, not a page load: adopt it too.
  useEffect(() => {
    const on = () => {
      const k = adoptKeyFromFragment();
      if (k) {
        setMe(null);
        setStartError(undefined);
        setKey(k);
      }
    };
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  useEffect(() => {
    if (!api || me) return;
    api.client.whoami().then(setMe, (e: Error) => {
      clearSessionKey();
      setKey(null);
      setStartError(e.message);
    });
  }, [api, me]);
  if (!api || !key) {
    return (
      <SignIn
        baseUrl={baseUrl}
        initialError={startError}
        onSignedIn={(k, who) => {
          saveSessionKey(k);
          setMe(who);
          setKey(k);
        }}
      />
    );
  }
  if (!me)
    return (
      <main className="page">
        <p className="muted">Signing in…</p>
      </main>
    );
  const signOut = () => {
    clearSessionKey();
    setMe(null);
    setKey(null);
    window.location.hash = '#/';
  };
  return (
    <SessionContext.Provider value={{ api, me }}>
      <LiveProvider api={api}>
        <a
          className="skip"
          href="#main"
          onClick={(e) => {
            e.preventDefault();
            document.getElementById('main')?.focus();
          }}
        >
          Skip to content
        </a>
        <header className="top">
          <a className="brand" href="#/">
            Deqo
          </a>
          <nav aria-label="Main">
            <ul>
              {NAV.filter((n) => n.scopes.includes(me.scope)).map((n) => (
                <li key={n.href}>
                  <a href={n.href} aria-current={path.startsWith(n.href.slice(1)) ? 'page' : undefined}>
                    {n.label}
                  </a>
                </li>
              ))}
            </ul>
          </nav>
          <div className="who">
            <LiveIndicator />
            <span title={me.accountId}>
              {me.accountName} ({me.scope})
            </span>
            <button type="button" className="secondary" onClick={signOut}>
              Sign out
            </button>
          </div>
        </header>
        <main id="main" className="page" tabIndex={-1}>
          <Routed path={path} scope={me.scope} />
        </main>
      </LiveProvider>
    </SessionContext.Provider>
  );
}
