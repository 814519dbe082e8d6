/** Types for picomatch 4 (the package ships none): the glob matcher core's output comparator uses. */
declare module 'picomatch' {
  interface PicomatchOptions {
    /** Let `*` and `**` match names starting with a dot (default false, as in a shell). */
    dot?: boolean;
    nocase?: boolean;
  }
  /** Compiles `glob` into a test of a `/`-separated path. Throws TypeError on an empty glob. */
  function picomatch(glob: string | readonly string[], options?: PicomatchOptions): (path: string) => boolean;
  export default picomatch;
}
