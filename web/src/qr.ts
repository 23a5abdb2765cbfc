import { encode } from './vendor/uqr.js';

/** White modules around the symbol: the 4 that ISO/IEC 18004 asks for, so that any scanner finds it. */
const QUIET_ZONE = 4;

/**
 * Draws `text` as a QR code on `canvas`: black modules on white, `scale` pixels each, with
 * the quiet zone; the canvas takes the size that needs. Done here, in the page: the text (an
 * `otpauth://` URI holding a secret) is sent to no QR service.
 */
export function drawQrCode(canvas: HTMLCanvasElement, text: string, scale = 5): void {
  const { data, size } = encode(text, { ecc: 'M', border: 0 });
  const side = (size + 2 * QUIET_ZONE) * scale;
  canvas.width = side;
  canvas.height = side;
  const context = canvas.getContext('2d');
  if (!context) throw new Error('no 2D canvas context');
  context.fillStyle = '#ffffff';
  context.fillRect(0, 0, side, side);
  context.fillStyle = '#000000';
  data.forEach((row, y) => {
    row.forEach((dark, x) => {
      if (dark) context.fillRect((x + QUIET_ZONE) * scale, (y + QUIET_ZONE) * scale, scale, scale);
    });
  });
}

/** Wipes the canvas (and its pixels from memory): the code it showed is no longer needed. */
export function clearQrCode(canvas: HTMLCanvasElement): void {
  canvas.width = 0;
  canvas.height = 0;
}
