use mjlink_sim::tracegen::{self, TraceOptions};
#[test]
fn dump() {
    let options = TraceOptions {
        seed: 3,
        events: 12_000,
        shapes_2026_per_mille: 500,
        strip_reference_per_mille: 300,
        ..TraceOptions::default()
    };
    let mut trace = Vec::new();
    tracegen::generate_records(&options, &mut trace, &mut |_| {}).unwrap();
    std::fs::write("/tmp/t2026.jsonl", &trace).unwrap();
}
