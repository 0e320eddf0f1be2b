// A small, varied library of made-up files (notes, code, data, images) for the screenshots: enough
// shared words for the tagger to link them into a graph worth looking at.

const TOPICS = {
  rust: "Rust ownership borrowing lifetimes traits async tokio cargo crates compiler",
  garden: "garden tomatoes compost seeds watering spring harvest soil herbs",
  travel: "travel Lisbon Porto trains itinerary hotel museum coast budget",
  finance: "finance invoice budget taxes receipts quarterly report expenses",
  astronomy: "astronomy telescope nebula galaxy Jupiter moons observation night",
  cooking: "cooking recipe bread sourdough oven flour tomatoes herbs dinner",
};

function svg(hue, label) {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="320" height="200"><rect width="320" height="200" fill="hsl(${hue} 70% 85%)"/><circle cx="160" cy="100" r="60" fill="hsl(${hue} 60% 50%)"/><text x="160" y="190" font-size="16" text-anchor="middle">${label}</text></svg>`;
}

export function sampleFiles() {
  const out = [];
  for (const [topic, words] of Object.entries(TOPICS)) {
    const w = words.split(" ");
    out.push([`${topic}-notes.md`, `# ${topic} notes\n\n${words}.\n\n- ${w.slice(0, 4).join("\n- ")}\n\n${words} ${words}\n`]);
    out.push([`${topic}-summary.txt`, `${words}\n`.repeat(3)]);
    out.push([`${topic}-data.csv`, `item,value\n${w.map((x, i) => `${x},${i * 7}`).join("\n")}\n`]);
    out.push([`${topic}.svg`, svg(w.length * 37, topic)]);
    out.push([`${topic}-photo.svg`, svg(w.length * 53, `${topic} photo`)]);
  }
  out.push(["main.rs", `//! A tiny Rust program: ownership and borrowing.\nuse std::collections::HashMap;\n\nfn main() {\n    let mut counts: HashMap<&str, usize> = HashMap::new();\n    for word in "rust traits async tokio cargo".split(' ') {\n        *counts.entry(word).or_default() += 1;\n    }\n    println!("{counts:?}");\n}\n`]);
  out.push(["budget.py", `"""Quarterly budget report: finance, invoice and expenses."""\n\ndef total(expenses):\n    return sum(e["amount"] for e in expenses)\n\nprint(total([{"amount": 12}, {"amount": 30}]))\n`]);
  out.push(["itinerary.json", JSON.stringify({ travel: ["Lisbon", "Porto"], trains: true, budget: 900 }, null, 2)]);
  out.push(["sourdough-recipe.md", "# Sourdough bread\n\nFlour, water, salt, starter. Bake in a hot oven; cooking takes patience.\n\n1. Mix the flour\n2. Fold\n3. Bake\n"]);
  out.push(["jupiter-observation.md", "# Jupiter, night of the 12th\n\nTelescope at 150x. Four moons visible; the galaxy of Andromeda later. Astronomy log.\n"]);
  return out;
}

/** PUTs the samples through the API; returns some ids the screenshots open. */
export async function seedSamples(api) {
  const ids = {};
  for (const [name, body] of sampleFiles()) {
    const r = await api("PUT", `/api/files?name=${encodeURIComponent(name)}`, body);
    if (name === "rust-notes.md") ids.markdown = r.id;
    if (name === "main.rs") ids.code = r.id;
  }
  // Let tagging finish.
  for (let i = 0; i < 60; i++) {
    const { files } = await api("GET", "/api/files?limit=500");
    if (files.every((f) => f.tagging !== "pending")) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  return ids;
}
