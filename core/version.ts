/** kiln's version, written into program files. */
export const KILN_VERSION = "0.1.0";
