// (stub: filled by its owner)
export function registerControl(): void {}
