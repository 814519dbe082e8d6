/**
 * The disk an execution may take on a provider: its output folder is an ext4 filesystem of its own sized from the
 * output cap (the agent's output-fs.ts makes it; a write past it fails with ENOSPC), plus its inputs. Pure: the
 * scheduler matches by it (matching.ts demandOf) and the agent builds the filesystem from it.
 */
import { MAX_OUTPUT_FILES } from '../protocol/index.js';

const MIB = 1024 * 1024;

/** Size, block size and inode count of the ext4 filesystem of an output cap. */
export interface OutputFsPlan {
  /** Size of the image (and at most what it takes on the provider's disk), bytes, a multiple of 1 MiB. */
  bytes: number;
  /** Block size, bytes: 1 KiB up to a 256 MiB cap (little lost to rounding), 4 KiB above. */
  blockSize: 1024 | 4096;
  /** Inodes: every file and folder the job creates takes one. */
  inodes: number;
}

/** Size of one inode, bytes (mkfs.ext4 -I). */
export const OUTPUT_FS_INODE_BYTES = 256;

/**
 * The filesystem of an output cap of `capBytes`. Inodes: one per 4 KiB of cap (1 KiB blocks) or per 16 KiB (4 KiB
 * blocks), at least 2,048 and at most MAX_OUTPUT_FILES + 1,024 (more files could not be packaged anyway). Size: the cap,
 * plus a block of rounding and an inode per inode (so any job whose files sum to at most the cap, in at most `inodes`
 * files and folders, fits), plus 1/64 of the cap for extent blocks and 1 MiB of metadata, rounded up to 1 MiB.
 */
export function outputFsPlan(capBytes: number): OutputFsPlan {
  const blockSize = capBytes <= 256 * MIB ? 1024 : 4096;
  const perInode = blockSize === 1024 ? 4096 : 16_384;
  const inodes = Math.min(MAX_OUTPUT_FILES + 1024, Math.max(2048, Math.ceil(capBytes / perInode)));
  const raw = capBytes + Math.ceil(capBytes / 64) + inodes * (blockSize + OUTPUT_FS_INODE_BYTES) + MIB;
  return { bytes: Math.ceil(raw / MIB) * MIB, blockSize, inodes };
}
