import type { Tensor32 } from '../tensor';
import { UserError } from '../../common/userError';
import type { TensorHeader } from './safetensors';

/** A PyTorch state dict (.pth): every tensor's dtype and shape first, then the data of the ones wanted. */
export interface PthStateDict {
  readonly header: TensorHeader;
  read(keep: (name: string) => boolean): Map<string, Tensor32>;
}

export function readPthStateDict(path: string): PthStateDict {
  throw new UserError(`${path}: TransformerLens .pth checkpoints are not supported yet`);
}
