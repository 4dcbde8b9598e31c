// (stub: filled by its owner)
export function registerElementwise(): void {}
