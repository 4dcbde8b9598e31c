// (stub: filled by its owner)
export function registerNorm(): void {}
