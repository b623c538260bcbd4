/// Splits items into rounds in which each saga appears at most once, keeping each saga's items in
/// their order: the first round holds each saga's first item, the second its second, and so on. A
/// round can go to the store as one batch; the rounds go one after the other. Saga ids compare as
/// the store compares them: as UUIDs, whatever their case.
func sagaRounds<Item>(_ items: [Item], sagaID: (Item) -> String) -> [[Item]] {
    var rounds: [[Item]] = []
    var pending = items
    while !pending.isEmpty {
        var seen = Set<String>()
        var round: [Item] = []
        var later: [Item] = []
        for item in pending {
            if seen.insert(sagaID(item).lowercased()).inserted { round.append(item) } else { later.append(item) }
        }
        rounds.append(round)
        pending = later
    }
    return rounds
}
