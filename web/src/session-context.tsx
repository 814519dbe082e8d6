/** The signed-in session shared with every view: the API door and who the key belongs to. */
import { createContext, useContext } from 'react';
import type { WhoAmI } from '../../src/protocol/index.js';
import type { DashboardApi } from './api.js';

export interface Session {
  api: DashboardApi;
  me: WhoAmI;
}

/** Provided by App once signed in (tests provide their own). */
export const SessionContext = createContext<Session | null>(null);

/** The signed-in session (views render only when signed in). */
export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside a signed-in app');
  return s;
}
