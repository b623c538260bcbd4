import ArgumentParser
import BatonCore
import Foundation

/// Finds and loads workflow definition files.
enum WorkflowFiles {
    struct Result {
        var file: String
        var outcome: Swift.Result<WorkflowDefinition, DefinitionError>
    }

    struct MissingPath: Error, CustomStringConvertible {
        var path: String
        var description: String { "no such file or directory: \(path)" }
    }

    /// The definition files named by `paths`: files as given, directories expanded to their
    /// `.yaml`, `.yml` and `.json` files in name order.
    static func expand(_ paths: [String]) throws -> [String] {
        var files: [String] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw MissingPath(path: path)
            }
            if isDirectory.boolValue {
                let names = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
                let base = path.hasSuffix("/") ? String(path.dropLast()) : path
                files += names.filter { WorkflowFormat(fileName: $0) != nil }.map { "\(base)/\($0)" }
            } else {
                files.append(path)
            }
        }
        return files
    }

    /// The files named by `paths` for a command that reads them: a path that is missing, or no
    /// definition file at all, is the user's error.
    static func required(_ paths: [String]) throws(ValidationError) -> [String] {
        let files: [String]
        do {
            files = try expand(paths)
        } catch {
            throw ValidationError("\(error)")
        }
        guard !files.isEmpty else {
            throw ValidationError("no .yaml, .yml or .json files in \(paths.joined(separator: ", "))")
        }
        return files
    }

    /// Parses every file; a second file defining a name and version already seen is an error too.
    static func load(_ files: [String]) -> [Result] {
        var seen: [String: String] = [:]
        return files.map { file in
            let outcome = Swift.Result { () throws(DefinitionError) in try parse(file) }
            if case .success(let definition) = outcome {
                let identity = "\(definition.name) v\(definition.version)"
                if let first = seen[identity] {
                    let issue = DefinitionIssue(step: nil, field: "version", message: "\(identity) is already defined in \(first)")
                    return Result(file: file, outcome: .failure(DefinitionError(source: file, issues: [issue])))
                }
                seen[identity] = file
            }
            return Result(file: file, outcome: outcome)
        }
    }

    private static func parse(_ file: String) throws(DefinitionError) -> WorkflowDefinition {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw DefinitionError(
                source: file, issues: [.init(step: nil, field: "(file)", message: "cannot read: \(error.localizedDescription)")])
        }
        let format = WorkflowFormat(fileName: file) ?? .yaml
        return try WorkflowDefinition.parse(text, format: format, source: file)
    }
}
