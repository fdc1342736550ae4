/// Columns aligned as fleetctl's output was (Go's text/tabwriter with minwidth 0, tabwidth 8,
/// padding 1 and tab as the pad character): every column but the last is padded with tabs to a
/// common width, a multiple of 8 at least one more than its widest cell. Output made of tabs
/// keeps `cut -f` and `awk -F'\t'` scripts written for fleetctl working.
public enum Table {
    public static let tabWidth = 8

    public static func render(_ rows: [[String]]) -> String {
        guard let columnCount = rows.map(\.count).max(), columnCount > 0 else { return "" }
        var widths = [Int](repeating: 0, count: columnCount)
        for row in rows {
            for (index, cell) in row.enumerated() where index < columnCount - 1 {
                widths[index] = max(widths[index], cell.count)
            }
        }
        let padded = widths.map { width in ((width + 1 + tabWidth - 1) / tabWidth) * tabWidth }
        var output = ""
        for row in rows {
            for (index, cell) in row.enumerated() {
                output += cell
                if index < row.count - 1 {
                    let tabs = max(1, (padded[index] - cell.count + tabWidth - 1) / tabWidth)
                    output += String(repeating: "\t", count: tabs)
                }
            }
            output += "\n"
        }
        return output
    }
}
