// (stub: filled by its owner)
export function registerLinalg(): void {}
