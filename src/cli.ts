import { isUserError } from './engine/userError';

const USAGE = `usage: patchlens <command> [options]

commands:
  run SPEC [--model ID_OR_DIR] [--out DIR] [--device auto|cpu|webgpu|cuda|dml|coreml] [--png]
      run the activation-patching sweeps of a .patch.json spec and write DIR/<name>.result.json
  help
      print this text`;

async function main(argv: string[]): Promise<number> {
  const [command] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    console.log(USAGE);
    return 0;
  }
  console.error(`patchlens: unknown command '${command}'; run 'patchlens help' for the list`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (isUserError(e)) {
      console.error(`patchlens: ${e.message}`);
      process.exit(1);
    }
    console.error('patchlens: internal error (please report it):', e);
    process.exit(70);
  },
);
