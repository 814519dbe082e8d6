/** Saves bytes fetched with the API key as a file (an object URL clicked with `download`). */
import type { DashboardApi } from './api.js';

/** Downloads blob `sha256` as `filename`. */
export async function saveBlob(api: DashboardApi, sha256: string, filename: string): Promise<void> {
  const blob = await api.blob(sha256);
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
