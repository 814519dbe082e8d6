/**
 * Script jobs on the agent: the source is written to `<inputs>/main.py` (so it appears as /inputs/main.py), and
 * when the script has requirements the container's command is wrapped in a small Python bootstrap that checks
 * each one is importable (pip-installing the missing ones first when the job has network), then `exec`s the
 * job's own command. When a requirement cannot be met the bootstrap prints one marker line on stderr and exits
 * REQUIREMENTS_EXIT_CODE without running the job; the agent turns that into a `requirements_unavailable`
 * failure, which the coordinator counts as a job-caused failure that replicas vote on.
 */
import { chmod, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SCRIPT_INPUT_PATH, type Assignment } from '../protocol/index.js';
import type { ExecutionOutcome } from './executor.js';

/** Exit code of the bootstrap when a requirement is unavailable (the job's command did not run). */
export const REQUIREMENTS_EXIT_CODE = 86;
/** Start of the bootstrap's stderr line naming what is missing. */
export const REQUIREMENTS_MARKER = 'deqo: requirements unavailable: ';

/**
 * The bootstrap (python3 -c). Reads the requirements from DEQO_REQUIREMENTS (JSON list) and DEQO_PIP ("1": try
 * `pip install --user`, into HOME=/tmp). A requirement's module is its name lower-cased with - → _, or a known
 * alias (scikit-learn → sklearn …). pip's output goes to stderr so stdout (hashed) stays the job's own.
 */
export const BOOTSTRAP = String.raw`
import importlib, json, os, re, subprocess, sys
ALIASES = {'scikit-learn': 'sklearn', 'pillow': 'PIL', 'pyyaml': 'yaml', 'beautifulsoup4': 'bs4', 'opencv-python': 'cv2',
  'opencv-python-headless': 'cv2', 'python-dateutil': 'dateutil', 'scikit-image': 'skimage', 'attrs': 'attr', 'pyzmq': 'zmq'}
def module(req):
    name = re.split(r'[\[<>=!~;\s]', req, maxsplit=1)[0].lower().replace('_', '-')
    return ALIASES.get(name, name.replace('-', '_'))
def missing(reqs):
    out = []
    for r in reqs:
        try:
            importlib.import_module(module(r))
        except Exception:
            out.append(r)
    return out
miss = missing(json.loads(os.environ.get('DEQO_REQUIREMENTS', '[]')))
why = ''
if miss and os.environ.get('DEQO_PIP') == '1':
    p = subprocess.run([sys.executable, '-m', 'pip', 'install', '--user', '--no-input', '--disable-pip-version-check'] + miss, stdout=2, stderr=2)
    if p.returncode != 0:
        why = ' (pip install failed with exit code %d; is pip in the image?)' % p.returncode
    import site
    site.addsitedir(site.getusersitepackages())
    importlib.invalidate_caches()
    miss = missing(miss)
elif miss:
    why = ' (not in the image; give the job network: true to pip-install it on a provider that allows network)'
if miss:
    sys.stderr.write('${REQUIREMENTS_MARKER}' + ', '.join('missing module %s (requirement %s)' % (module(r), r) for r in miss) + why + '\n')
    sys.stderr.flush()
    os._exit(${REQUIREMENTS_EXIT_CODE})
os.execvp(sys.argv[1], sys.argv[1:])
`;

/**
 * The command and environment a container runs for `a`: unchanged for a plain job; for a script job unbuffered
 * Python output (so live output flows) and, with requirements, the bootstrap in front of the job's command.
 */
export function scriptRun(a: Assignment): { command: string[]; env: Record<string, string> } {
  if (!a.script) return { command: a.command, env: a.env };
  const env = { ...a.env, PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1' };
  if (a.script.requirements.length === 0) return { command: a.command, env };
  return {
    command: ['python3', '-c', BOOTSTRAP, ...a.command],
    env: { ...env, DEQO_REQUIREMENTS: JSON.stringify(a.script.requirements), DEQO_PIP: a.network ? '1' : '0' },
  };
}

/** Writes a script job's source to `<inputsDir>/main.py` (read-only for the container user); nothing for other jobs. */
export async function writeScript(a: Assignment, inputsDir: string): Promise<void> {
  if (!a.script) return;
  const dest = join(inputsDir, SCRIPT_INPUT_PATH);
  await writeFile(dest, a.script.source, 'utf8');
  await chmod(dest, 0o644);
}

/**
 * Reclassifies the outcome of a script job whose bootstrap found a requirement unavailable (exit
 * REQUIREMENTS_EXIT_CODE and the marker line at the end of stderr) as a `requirements_unavailable` failure,
 * its message naming the missing modules. Any other outcome is returned as it is. Never throws.
 */
export async function scriptOutcome(
  a: Assignment,
  outcome: ExecutionOutcome,
  stderrPath: string,
): Promise<ExecutionOutcome> {
  if (
    !a.script ||
    a.script.requirements.length === 0 ||
    outcome.kind !== 'exited' ||
    outcome.exitCode !== REQUIREMENTS_EXIT_CODE
  )
    return outcome;
  const tail = await readTail(stderrPath, 8192).catch(() => '');
  const line = tail
    .split('\n')
    .reverse()
    .find((l) => l.startsWith(REQUIREMENTS_MARKER));
  if (!line) return outcome;
  return {
    kind: 'failed',
    reason: 'requirements_unavailable',
    message: line.slice('deqo: '.length),
    usage: outcome.usage,
    stdoutTruncated: outcome.stdoutTruncated,
    stderrTruncated: outcome.stderrTruncated,
  };
}

/** The last `max` bytes of a file, as UTF-8. */
async function readTail(path: string, max: number): Promise<string> {
  const f = await open(path, 'r');
  try {
    const size = (await f.stat()).size;
    const start = Math.max(0, size - max);
    const buf = Buffer.alloc(size - start);
    await f.read(buf, 0, buf.length, start);
    return buf.toString('utf8');
  } finally {
    await f.close();
  }
}
