/**
 * A second process for the download tests: downloads a model through the hub client, so that the
 * test can kill it (SIGKILL) in the middle of the transfer. Not a test file.
 *
 *   node --import tsx downloadWorker.ts SOURCE ENDPOINT CACHE_DIR
 */
import { resolveModelDir } from '../../src/engine/model/hub';
import { errorMessage } from '../../src/common/errorReason';

const [source, endpoint, cacheDir] = process.argv.slice(2);
resolveModelDir(source!, { endpoint: endpoint!, cacheDir: cacheDir! }).then(
  (dir) => console.log(dir),
  (e: unknown) => {
    console.error(errorMessage(e));
    process.exit(1);
  },
);
