/** Whether the checkout at `root` has a dist/ at least as new as its sources (dist-current.mjs). */
export function distIsCurrent(root: string): boolean;
