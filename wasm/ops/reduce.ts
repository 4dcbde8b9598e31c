// (stub: filled by its owner)
export function registerReduce(): void {}
