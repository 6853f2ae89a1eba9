// Preloaded (node --import) into a CLI process under test: when it exits, writes its peak resident set
// size in KiB to the file PATCHLENS_TEST_RSS_FILE names, so a test can bound a run's memory.
import { writeFileSync } from 'node:fs';

const file = process.env.PATCHLENS_TEST_RSS_FILE;
if (file) process.on('exit', () => writeFileSync(file, String(process.resourceUsage().maxRSS)));
