// (stub: filled by its owner)
export function registerIndexing(): void {}
